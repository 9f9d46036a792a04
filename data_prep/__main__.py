"""Prepare every dataset of a book profile that the shared data folder holds.

    python -m data_prep [--shared DIR] [--profile PROFILE] [--out DIR] [--limit N]

The datasets and their options come from the profile's ``parameters.datasets`` (default the real-data book,
configs/book_real.yaml), with ``{shared}`` standing for the shared data folder; a dataset whose folder is
not there is named and left out. Each one goes to ``OUT/<name>`` through ``faceprompt.data.prepare``; the
entries are read as the book reads them (:func:`faceprompt.book.datasets.parse_datasets`).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from faceprompt.book.datasets import DatasetSpec, parse_datasets
from faceprompt.config import read_yaml
from faceprompt.locations import project_root, shared_data_root


def profile_datasets(profile: Path, shared: Path) -> list[DatasetSpec]:
    """The profile's datasets as prepare calls, with the shared folder filled in."""
    data = read_yaml(profile)
    entries = (data.get("parameters") or {}).get("datasets") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{profile}: parameters.datasets must be a list of names or {{name: ..., root: ...}} entries")
    return parse_datasets(entries, shared)


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
    for spec in profile_datasets(profile, shared):
        if spec.root is not None and not Path(spec.root).is_dir():
            print(f"{spec.name}: {spec.root} is not there; left out", file=sys.stderr)
            continue
        if args.limit is not None:
            spec = dataclasses.replace(spec, options={**spec.options, "limit": args.limit})
        report = spec.prepare(args.out / spec.name, workers=args.workers, progress=False)
        print(report.summary())
        prepared += 1
    if not prepared:
        print(f"no dataset of {profile} found under {shared}", file=sys.stderr)
    return 0 if prepared else 1


if __name__ == "__main__":
    raise SystemExit(main())
