"""Seeded, stored train/val/test splits that keep each identity in one split.

A row's split is a pure function of (seed, group), where group is the identity when the dataset has
one and the image otherwise: hash the pair to a number in [0, 1) and cut by the fractions. So the split
doesn't depend on row order or on which subset (``--limit``) was prepared, and a person's images always
land together. The result is also written to ``splits.csv`` and reused as is on every later run.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from faceprompt.io import atomic_path

SPLIT_FILE = "splits.csv"


def unit_hash(seed: int, key: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, key); stable across runs, machines and Python versions."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(key: str, seed: int, val: float, test: float) -> str:
    u = unit_hash(seed, key)
    return "test" if u < test else "val" if u < test + val else "train"


def assign_splits(rows: list[dict], seed: int = 0, val: float = 0.1, test: float = 0.1,
                  stored: dict[str, str] | None = None, key: str = "key") -> None:
    """Fill ``split`` where it is empty, in place.

    ``stored`` (row key -> split) wins over everything. When some rows already carry an official
    ``test`` split, the others are divided into train and val only: the official test set stays the
    only test set, with val taking the same share of the rest.
    """
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise ValueError(f"split fractions val={val}, test={test} must be >= 0 and sum to < 1")
    stored = stored or {}
    has_official_test = any(r["split"] == "test" for r in rows)
    if has_official_test:
        val, test = val / (1 - test), 0.0
    for row in rows:
        if row[key] in stored:
            row["split"] = stored[row[key]]
        elif not row["split"]:
            group = f"id:{row['identity']}" if row.get("identity") else f"img:{row[key]}"
            row["split"] = split_of(group, seed, val, test)


def read_splits(path: str | os.PathLike) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        return {}
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns) != ["key", "split"]:
        raise ValueError(f"{path}: line 1 should be 'key,split', got {','.join(frame.columns)}")
    return dict(zip(frame["key"], frame["split"]))


def write_splits(path: str | os.PathLike, rows: list[dict], previous: dict[str, str], key: str = "key") -> None:
    """Store every split ever assigned (earlier runs' keys included), so a subset never forgets."""
    merged = dict(previous)
    merged.update({r[key]: r["split"] for r in rows})
    with atomic_path(path) as tmp:
        pd.DataFrame(sorted(merged.items()), columns=["key", "split"]).to_csv(tmp, index=False)
