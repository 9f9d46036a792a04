"""FairFace: ``fairface_label_train.csv`` and ``fairface_label_val.csv`` (``file,age,gender,race,service_test``).

Age comes as one of 9 bins (``more than 70`` becomes ``70+``), gender Male/Female, race one of 7 (kept).
The val file is FairFace's test set and stays ``test``; train is divided into train and val.

A CSV opened and saved by a spreadsheet turns the bins ``3-9`` and ``10-19`` into dates (``9-Mar``,
``Oct-19``) and booleans into ``TRUE``/``FALSE``. The date forms map back to exactly one bin, so they are
**repaired, with a warning** giving the count and an example line; any other unknown value is refused for
its row (skipped, with file, line and value).
"""
from __future__ import annotations

import csv
from pathlib import Path

from faceprompt.data.adapters.base import ScanResult, make_row, require_dir
from faceprompt.tasks import AGE_BINS

NAME = "fairface"
DETECT_BY_DEFAULT = True  # FairFace images are padded face crops; detection tightens them
LABEL_FILES = {"fairface_label_train.csv": "", "fairface_label_val.csv": "test"}
RACES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern")
GENDERS = {"male": "male", "female": "female"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PUBLISHED_AGES = {b: b for b in AGE_BINS[:-1]} | {"more than 70": "70+", "70+": "70+"}


def _date_forms(low: int, high: int) -> set[str]:
    """Ways a spreadsheet shows ``low-high`` after reading it as a date (day-month or month-year)."""
    forms = set()
    for month, other in ((low, high), (high, low)):
        if 1 <= month <= 12:
            mon = _MONTHS[month - 1]
            forms |= {f"{other}-{mon}", f"{mon}-{other:02d}", f"{mon}-{other}"}
    return forms


def spreadsheet_repairs() -> dict[str, str]:
    """Date-looking value (lower case) -> bin, only for forms that map back to exactly one bin."""
    seen: dict[str, set[str]] = {}
    for label in AGE_BINS[:-1]:
        low, high = map(int, label.split("-"))
        for form in _date_forms(low, high):
            seen.setdefault(form.lower(), set()).add(label)
    return {form: bins.pop() for form, bins in seen.items() if len(bins) == 1}


_REPAIRS = spreadsheet_repairs()


def parse_age(value: str) -> tuple[str, bool]:
    """(bin, repaired) for a FairFace age value; ValueError for anything else."""
    value = value.strip()
    if value in _PUBLISHED_AGES:
        return _PUBLISHED_AGES[value], False
    if value.lower() in _REPAIRS:
        return _REPAIRS[value.lower()], True
    raise ValueError(f"unknown age value {value!r}; expected one of {list(_PUBLISHED_AGES)[:-1]}")


def read_labels(path: Path, split: str, root: Path, result: ScanResult) -> None:
    repaired: list[tuple[int, str, str]] = []
    booleans = 0
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:  # -sig: spreadsheets add a BOM
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("file", "age", "gender", "race") if c not in columns]
        if missing:
            raise ValueError(f"{path}: line 1 lacks column(s) {missing}; found {columns}")
        for line_no, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            try:
                age_bin, was_date = parse_age(row["age"])
                gender = GENDERS.get(row["gender"].lower())
                if gender is None:
                    raise ValueError(f"unknown gender value {row['gender']!r} (expected Male or Female)")
                if row["race"] not in RACES:
                    raise ValueError(f"unknown race value {row['race']!r}")
            except ValueError as err:
                result.skip(path, str(err), line_no)
                continue
            if was_date:
                repaired.append((line_no, row["age"], age_bin))
            booleans += row.get("service_test", "") in ("TRUE", "FALSE")
            image = root / row["file"]
            if not row["file"] or not image.is_file():
                result.skip(image, f"missing image file (named at {path.name}:{line_no})")
                continue
            result.rows.append(make_row(image, NAME, f"{path.name}:{line_no}", split=split, gender=gender,
                                        age_bin=age_bin, race=row["race"]))
    if repaired:
        line_no, was, now = repaired[0]
        result.warnings.append(
            f"{path.name}: repaired {len(repaired)} age value(s) a spreadsheet had turned into dates "
            f"(e.g. line {line_no}: {was!r} -> {now!r})")
    if booleans:
        result.warnings.append(f"{path.name}: service_test written as TRUE/FALSE by a spreadsheet ({booleans} rows); "
                               "read as True/False")


def scan(root, **_) -> ScanResult:
    root = require_dir(root, NAME)
    result = ScanResult()
    found = 0
    for file_name, split in LABEL_FILES.items():
        path = root / file_name
        if path.is_file():
            found += 1
            read_labels(path, split, root, result)
    if not found:
        raise FileNotFoundError(f"{NAME}: neither {' nor '.join(LABEL_FILES)} is in {root}")
    return result
