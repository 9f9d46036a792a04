"""Seeded, stored train/val/test splits that keep each identity in one split.

A row's split is a pure function of (seed, group), where group is the identity when the dataset has
one and the image otherwise: hash the pair to a number in [0, 1) and cut by the fractions. So the split
doesn't depend on row order or on which subset (``--limit``) was prepared, and a person's images always
land together. The result is also written to ``splits.csv`` and reused as is on every later run.

:func:`thesis_split` is the thesis's own cut of a training set into train and validation rows, done when a
run starts (``val_split: thesis``), not when a dataset is prepared.
"""
from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from faceprompt.io import atomic_path

SPLIT_FILE = "splits.csv"
# script/split_dataset.sh at the thesis's head 4b18297: `split_csv.py --train_ratio 0.8 --seed 2025` over the
# train folder of CelebA_HQ, FairFace, RAF-DB and Lagenda, each on its own.
THESIS_TRAIN_FRACTION = 0.8
THESIS_SPLIT_SEED = 2025
STRATUM_COLUMNS = ("gender", "age_bin", "emotion")


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


def thesis_split(frame: pd.DataFrame, seed: int = THESIS_SPLIT_SEED,
                 train_fraction: float = THESIS_TRAIN_FRACTION) -> np.ndarray:
    """Which rows are validation rows (a bool per row) under the thesis's split (``dataset/split_csv.py``).

    Each dataset (the ``dataset`` column) is cut on its own. A stratum is one combination of its rows'
    gender, age bin and emotion, a missing label counting as a value (the thesis drops a missing gender or
    emotion from the combination, which can merge two rare combinations into one). One row of every stratum of two rows or
    more goes to validation, then rows drawn from the rest until validation holds ``round(n * (1 -
    train_fraction))`` of the dataset's ``n`` rows (more only where the strata alone exceed that). So the cut is
    80/20 per dataset and every repeated label combination is validated on; within a stratum it is 80/20 only
    on average. The thesis draws with ``random.shuffle`` over its CSV's row order; here a row's draw is a hash of
    (``seed``, dataset, its path below the dataset's common folder), so the cut does not depend on row order or
    on where the crops live. Rows are split one by one, as in the thesis: a person's photos may land in both.
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction: {train_fraction} must be in (0, 1)")
    held = np.zeros(len(frame), dtype=bool)
    for _, rows in frame.reset_index(drop=True).groupby("dataset", sort=True):
        held[_held_rows(rows, seed, train_fraction)] = True
    return held


def _held_rows(rows: pd.DataFrame, seed: int, train_fraction: float) -> list[int]:
    """Positions (in the whole frame) of one dataset's validation rows."""
    paths = [str(p) for p in rows["path"]]
    base = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    dataset = str(rows["dataset"].iloc[0])
    draws = {i: unit_hash(seed, f"{dataset}/{Path(os.path.relpath(p, base)).as_posix()}")
             for i, p in zip(rows.index, paths)}
    strata = defaultdict(list)
    labels = rows[list(STRATUM_COLUMNS)].fillna("").astype(str).itertuples(index=False, name=None)
    for i, label in zip(rows.index, labels):
        strata[label].append(i)
    held = {min(members, key=draws.get) for members in strata.values() if len(members) > 1}
    target = round(len(rows) * (1 - train_fraction))  # the thesis's rounding: Python's round
    rest = sorted((i for i in rows.index if i not in held), key=draws.get)
    held.update(rest[:max(target - len(held), 0)])
    return sorted(held)
