"""Read the values glued into executed notebooks, and compare two builds of the book.

    python -m faceprompt.book._machinery.executed BEFORE_DIR AFTER_DIR     # folders of executed notebooks

MyST-NB stores each glued value as an output whose metadata names it (``scrapbook.name``); its
``text/plain`` form is what ``{glue:text}`` prints, its ``text/html`` form what a ``{glue}`` table shows.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

PLAIN, HTML = "text/plain", "text/html"
# Wall-clock measurements of the build itself: they differ between any two runs.
TIMED_KEYS = ("eval-latency-table", "demo-status")  # the demo's message reports its detect/classify times


def glued_values(notebook: str | Path) -> dict[str, dict[str, str]]:
    """Key -> {mime type: text} of every value glued in an executed notebook (the last one wins)."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    values = {}
    for cell in cells:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook")
            if record:
                prefix = record.get("mime_prefix", "")
                values[record["name"]] = {mime[len(prefix):]: "".join(text) if isinstance(text, list) else str(text)
                                          for mime, text in output.get("data", {}).items()}
    return values


def build_values(folder: str | Path) -> dict[tuple[str, str], dict[str, str]]:
    """(notebook stem, key) -> glued value, over every executed notebook in ``folder``."""
    return {(path.stem, k): v for path in sorted(Path(folder).glob("*.ipynb")) for k, v in glued_values(path).items()}


def timed(key: str) -> bool:
    """Whether a key holds a wall-clock measurement of this build (latency tables and ratios)."""
    return key.startswith(("latency-", "slowdown-")) or key in TIMED_KEYS


def compare(before: dict, after: dict) -> dict[str, list]:
    """Keys in both builds whose values differ (timings apart), timed keys, and keys in only one build."""
    common = sorted(set(before) & set(after))
    differ = [k for k in common if not timed(k[1]) and before[k] != after[k]]
    return {"compared": [k for k in common if not timed(k[1])], "differ": differ,
            "timed": [k for k in common if timed(k[1])], "only_before": sorted(set(before) - set(after)),
            "only_after": sorted(set(after) - set(before))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faceprompt.book._machinery.executed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="folder of executed notebooks (one build)")
    parser.add_argument("after", help="folder of executed notebooks (another build)")
    args = parser.parse_args(argv)
    before, after = build_values(args.before), build_values(args.after)
    result = compare(before, after)
    for name in ("compared", "differ", "timed", "only_before", "only_after"):
        print(f"{name}: {len(result[name])}")
    for k in result["differ"]:
        print(f"DIFFERS {k[0]}::{k[1]}\n  before: {before[k].get(PLAIN, '')[:300]!r}\n  after:  "
              f"{after[k].get(PLAIN, '')[:300]!r}")
    for name in ("only_before", "only_after"):
        for k in result[name]:
            print(f"{name.upper()} {k[0]}::{k[1]}")
    return 1 if result["differ"] or result["only_before"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
