"""The manifest: one row per face image, one column per label, a missing label left empty.

Columns (all strings in the CSV; empty means "unknown", never a guess):

========== =============================================================
path        image file; relative paths are relative to the manifest's folder
dataset     dataset key (``utkface``, ``fairface``, ``synthetic``, ...)
split       ``train`` / ``val`` / ``test``
gender      a class of ``tasks.GENDER`` or empty
age         age in years (0 to 150) where the dataset gives it, else empty
age_bin     a class of ``tasks.AGE`` or empty; with an age, the age's bin
emotion     a class of ``tasks.EMOTION`` or empty
race        the dataset's own race label, or empty
identity    person identifier (for identity-disjoint splits), or empty
source      where the labels came from (file and line, or rule)
========== =============================================================
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from faceprompt.io import atomic_path, check_is_file
from faceprompt.tasks import AGE_BINNINGS, TASKS, age_to_bin

MANIFEST_COLUMNS: tuple[str, ...] = (
    "path", "dataset", "split", "gender", "age", "age_bin", "emotion", "race", "identity", "source",
)
SPLITS: tuple[str, ...] = ("train", "val", "test")
# Manifest column holding each task's label.
TASK_COLUMNS: dict[str, str] = {"gender": "gender", "age": "age_bin", "emotion": "emotion"}


def write_manifest(rows: pd.DataFrame | list[dict], path: str | os.PathLike) -> Path:
    """Write rows as a manifest CSV (atomically), filling absent columns with empty values."""
    frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    for column in MANIFEST_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    frame = frame[list(MANIFEST_COLUMNS)]
    validate_manifest(frame, str(path))
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def read_manifest(path: str | os.PathLike, resolve_paths: bool = True) -> pd.DataFrame:
    """Read and validate a manifest; image paths become absolute when ``resolve_paths``."""
    path = Path(path)
    check_is_file(path, ValueError(f"manifest {path} is a folder; give its manifest.csv"),
                  FileNotFoundError(f"manifest {path} does not exist (run `faceprompt prepare` first)"))
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError:
        raise ValueError(f"manifest {path}: not a text CSV file (run `faceprompt prepare` to write one)") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        reason = " ".join(str(err).split())
        raise ValueError(f"manifest {path}: not a readable CSV ({reason}); run `faceprompt prepare` to write one") \
            from None
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"manifest {path}: missing column(s) {missing}")
    validate_manifest(frame, str(path))
    fill_age_bins(frame)
    if resolve_paths:
        base = path.parent.resolve()
        frame["path"] = [p if os.path.isabs(p) else str(base / p) for p in frame["path"]]
    return frame


def validate_manifest(frame: pd.DataFrame, where: str = "manifest") -> None:
    """Raise ValueError naming the file, row (CSV line) and field of the first bad value."""
    for i, path in enumerate(frame["path"].fillna("").astype(str)):
        if not path.strip():
            raise ValueError(f"{where}: line {i + 2}, field 'path': empty (every row names its image file)")
    for i, split in enumerate(frame["split"].astype(str)):
        if split not in SPLITS:
            raise ValueError(f"{where}: line {i + 2}, field 'split': {split!r} is not one of {list(SPLITS)}")
    for task, column in TASK_COLUMNS.items():
        allowed = set(TASKS[task].classes) | {""}
        values = frame[column].fillna("").astype(str)
        bad = ~values.isin(allowed)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise ValueError(
                f"{where}: line {i + 2}, field {column!r}: {values.iloc[i]!r} is not a {task} class "
                f"{sorted(allowed - {''})}"
            )
    _validate_ages(frame, where)


# A number of years as people write it: digits, perhaps a fraction ("1_0" or "1e1" is not an age).
_YEARS = re.compile(r"\d+(\.\d+)?")


def fill_age_bins(frame: pd.DataFrame) -> None:
    """Rows with an age but no ``age_bin`` get the bin of their age (else the age task would miss them)."""
    ages = frame["age"].fillna("").astype(str).str.strip()
    missing = (frame["age_bin"].fillna("").astype(str) == "") & (ages != "")
    if missing.any():
        frame.loc[missing, "age_bin"] = [age_to_bin(a) for a in ages[missing]]


def with_age_binning(frame: pd.DataFrame, binning: str = "floor") -> pd.DataFrame:
    """``frame`` with every given age's bin by ``binning`` (``tasks.AGE_BINNINGS``); a row with only a bin keeps
    it. A read manifest's bins are already "floor" (checked on reading), so that returns ``frame`` itself."""
    if binning not in AGE_BINNINGS:
        raise ValueError(f"age_binning: {binning!r} must be one of {list(AGE_BINNINGS)}")
    if binning == "floor" or "age" not in frame:  # no rows at all: no columns either
        return frame
    ages = frame["age"].fillna("").astype(str).str.strip()
    given = ages != ""
    if not given.any():
        return frame
    frame = frame.copy()
    frame.loc[given, "age_bin"] = [age_to_bin(a, binning) or "" for a in ages[given]]
    return frame


def _validate_ages(frame: pd.DataFrame, where: str) -> None:
    """A given age is a number of years (0-150) whose bin is the row's ``age_bin`` (when that is given)."""
    ages = frame["age"].fillna("").astype(str).str.strip()
    bins = frame["age_bin"].fillna("").astype(str)
    for i, (age, given) in enumerate(zip(ages, bins)):
        if not age:
            continue
        expected = age_to_bin(age) if _YEARS.fullmatch(age) else None
        if expected is None:
            raise ValueError(f"{where}: line {i + 2}, field 'age': {age!r} is not an age in years (0 to 150)")
        if given and given != expected:
            raise ValueError(f"{where}: line {i + 2}, field 'age_bin': {given!r} does not match age {age} "
                             f"(which is in bin {expected!r})")


def label_indices(frame: pd.DataFrame, task: str) -> list[int]:
    """Class index per row for one task, -1 where the label is missing (masked in the loss)."""
    classes = TASKS[task].classes
    lookup = {c: i for i, c in enumerate(classes)}
    return [lookup.get(v, -1) for v in frame[TASK_COLUMNS[task]].fillna("").astype(str)]
