"""Prepare every dataset of a book profile that the shared data folder holds.

    python -m data_prep [--shared DIR] [--profile PROFILE] [--out DIR] [--limit N]

The datasets and their options come from the profile's ``parameters.datasets`` (default the real-data book,
configs/book_real.yaml), with ``{shared}`` standing for the shared data folder; a dataset whose folder is
not there is named and left out. Each one goes to ``OUT/<name>`` through ``faceprompt.data.prepare``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceprompt.config import read_yaml
from faceprompt.locations import project_root, shared_data_root
from faceprompt.data.prepare import prepare_dataset


def _with_shared(value, shared: Path):
    """``{shared}`` in the strings of a profile entry -> the shared data folder."""
    if isinstance(value, str):
        return value.replace("{shared}", str(shared))
    if isinstance(value, dict):
        return {k: _with_shared(v, shared) for k, v in value.items()}
    return value


def profile_datasets(profile: Path, shared: Path) -> list[dict]:
    """The profile's dataset entries ({name, root, options...}) with the shared folder filled in."""
    data = read_yaml(profile)
    entries = (data.get("parameters") or {}).get("datasets") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "name" in e for e in entries):
        raise ValueError(f"{profile}: parameters.datasets must be a list of {{name: ..., root: ...}} entries")
    return [_with_shared(e, shared) for e in entries]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=None, help="shared data folder (default: the one "
                        "faceprompt.locations.shared_data_root finds)")
    parser.add_argument("--profile", type=Path, default=None, help="book profile (default configs/book_real.yaml)")
    parser.add_argument("--out", type=Path, default=Path("prepared"), help="one folder per dataset goes here")
    parser.add_argument("--limit", type=int, default=None, help="a seeded subset of N images per dataset")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    shared = args.shared or shared_data_root()
    profile = args.profile or project_root() / "configs" / "book_real.yaml"
    prepared = 0
    for entry in profile_datasets(profile, shared):
        options = {k: v for k, v in entry.items() if k not in ("name", "root")}
        root = entry.get("root")
        if root is not None and not Path(root).is_dir():
            print(f"{entry['name']}: {root} is not there; left out", file=sys.stderr)
            continue
        if args.limit is not None:
            options["limit"] = args.limit
        report = prepare_dataset(entry["name"], root, args.out / entry["name"], workers=args.workers,
                                 progress=False, **options)
        print(report.summary())
        prepared += 1
    if not prepared:
        print(f"no dataset of {profile} found under {shared}", file=sys.stderr)
    return 0 if prepared else 1


if __name__ == "__main__":
    raise SystemExit(main())
