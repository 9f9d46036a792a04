"""A static check of the glue keys: every key a chapter quotes is declared in :mod:`faceprompt.book._machinery.keys`,
and the notebook it names produces it. Nothing is executed.

    python -m faceprompt.book._machinery.keycheck      # prints the problems; exit status 1 when there are some

A key is produced by a notebook when the notebook's source calls the declared producer and the
producer's source spells the key (its literal start), or, for a key glued inline, when the notebook's
source spells the key in quotes. A key with a producer starts with a prefix its module declares
(``keys.PREFIXES``), so a key quoted in a chapter names the module that computes it.
"""
from __future__ import annotations

import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from faceprompt.book._machinery.keys import KEYS, PREFIXES, GlueKey, declared, prefix_module

# {glue}`key`, {glue:text}`notebook.ipynb::key:s`, and the ```{glue} key / :doc: notebook.ipynb directive
ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
DIRECTIVE = re.compile(r"^(`{3,}|:{3,})\{glue(?::\w+)?\}\s+(\S+)\s*$")
DOC_OPTION = re.compile(r"^:doc:\s*(\S+)\s*$")
FORMAT_SUFFIX = re.compile(r":[^:]*$")  # ':s', ':.1f' after the key


@dataclass(frozen=True)
class Use:
    """One quotation of a glue key in a chapter."""

    chapter: Path
    line: int
    notebook: str | None  # the notebook stem it names (None: none named)
    key: str

    def where(self) -> str:
        return f"{self.chapter}:{self.line}"


def _split_reference(text: str) -> tuple[str | None, str]:
    """'_executed/40_evaluate.ipynb::mean-coop:s' -> ('40_evaluate', 'mean-coop')."""
    if "::" not in text:
        return None, text.strip()
    path, key = text.split("::", 1)
    return Path(path.strip()).stem, FORMAT_SUFFIX.sub("", key.strip()) if ":" in key else key.strip()


def chapter_uses(chapter: Path) -> list[Use]:
    """Every glue key ``chapter`` quotes, with the notebook it names."""
    uses = []
    lines = chapter.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        for match in ROLE.finditer(line):
            notebook, key = _split_reference(match.group(1))
            uses.append(Use(chapter, number, notebook, key))
        directive = DIRECTIVE.match(line)
        if directive:
            options = [DOC_OPTION.match(o) for o in lines[number:number + 5]]
            doc = next((m.group(1) for m in options if m), None)
            uses.append(Use(chapter, number, Path(doc).stem if doc else None, directive.group(2)))
    return uses


def book_uses(book_dir: Path) -> list[Use]:
    return [use for chapter in sorted(Path(book_dir).rglob("*.md")) for use in chapter_uses(chapter)]


def notebook_of(stem: str, notebooks: list[str]) -> str | None:
    """The notebook an executed file comes from ('30_train_vpt' -> '30_train')."""
    matches = [n for n in notebooks if stem == n or stem.startswith(f"{n}_")]
    return max(matches, key=len) if matches else None


def producer_source(producer: str) -> tuple[str, str]:
    """(function name, its source) of ``module.function`` under ``faceprompt.book``."""
    module, name = producer.rsplit(".", 1)
    function = getattr(importlib.import_module(f"faceprompt.book.{module}"), name)
    return name, inspect.getsource(function)


def produced(entry: GlueKey, notebook_source: str) -> str | None:
    """Why ``entry`` is not produced by a notebook with this source (None: it is)."""
    if entry.producer is None:
        if not re.search(rf"[\"']{re.escape(entry.pattern)}[\"']", notebook_source):
            return f"the notebook does not glue {entry.pattern!r}"
        return None
    name, source = producer_source(entry.producer)
    if not re.search(rf"\b{re.escape(name)}\(", notebook_source):
        return f"the notebook does not call {entry.producer}"
    if entry.stem and not re.search(rf"[\"']{re.escape(entry.stem)}", source):
        return f"{entry.producer} does not glue {entry.pattern!r}"
    return None


def check(book_dir: Path, notebooks_dir: Path, keys: tuple[GlueKey, ...] = KEYS) -> list[str]:
    """Problems of the chapters under ``book_dir`` against the notebook sources in ``notebooks_dir``."""
    sources = {p.stem: p.read_text(encoding="utf-8") for p in sorted(Path(notebooks_dir).glob("[0-9]*.py"))}
    problems = []
    for use in book_uses(book_dir):
        if use.notebook is None:
            problems.append(f"{use.where()}: {use.key!r} names no executed notebook (add notebook.ipynb::)")
            continue
        notebook = notebook_of(use.notebook, list(sources))
        if notebook is None:
            problems.append(f"{use.where()}: {use.key!r}: no notebook {use.notebook!r} in {notebooks_dir}")
            continue
        entries = declared(use.key, notebook, keys)
        if not entries:
            problems.append(f"{use.where()}: {use.key!r} is not declared for {notebook} in "
                            f"faceprompt/book/_machinery/keys.py")
            continue
        why = [produced(e, sources[notebook]) for e in entries]
        if all(why):
            problems.append(f"{use.where()}: {use.key!r}: {why[0]}")
    return problems


def prefix_problems(keys: tuple[GlueKey, ...] = KEYS, prefixes: dict[str, tuple[str, ...]] = PREFIXES) -> list[str]:
    """Key families with a producer whose pattern does not start with a prefix of the producer's module
    (``keys.PREFIXES``, the longest matching prefix deciding), prefixes declared for two modules, and
    prefixes no family of their module uses. A pattern that starts with a placeholder is named by data."""
    problems = []
    owners: dict[str, str] = {}
    for module, own in prefixes.items():
        for prefix in own:
            if prefix in owners:
                problems.append(f"key prefix {prefix!r} is declared for both {owners[prefix]} and {module}")
            owners.setdefault(prefix, module)
    used = set()
    for entry in keys:
        if entry.producer is None or entry.pattern.startswith("{"):
            continue
        module = entry.producer.rsplit(".", 1)[0]
        owner = prefix_module(entry.pattern, prefixes)
        if owner == module:
            used.add(max((p for p in prefixes[module] if entry.pattern.startswith(p)), key=len))
            continue
        own = ", ".join(prefixes.get(module, ())) or "none"
        reads = f"; it reads as {owner}'s" if owner else ""
        problems.append(f"{entry.pattern!r} (glued by {entry.producer}) does not start with a key prefix of "
                        f"{module} (declared: {own}){reads}")
    for module, own in prefixes.items():
        problems += [f"key prefix {p!r} of {module}: no key glued by {module} starts with it" for p in own
                     if p not in used and owners[p] == module]
    return problems


def main() -> int:
    from faceprompt.locations import project_root

    root = project_root()
    problems = prefix_problems() + check(root / "book", root / "notebooks")
    print("\n".join(problems) or "every glue key of the book is declared and produced")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
