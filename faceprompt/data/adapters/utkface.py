"""UTKFace: labels in the file name ``[age]_[gender]_[race]_[datetime].jpg.chip.jpg``.

gender 0 = male, 1 = female; race 0-4 = White, Black, Asian, Indian, Others (kept as words).
A few published names lack the race field (``61_1_20170109150557335.jpg.chip.jpg``): their race is
left empty, age and gender are kept. The "aligned & cropped" chips are already faces, so detection is
off by default.
"""
from __future__ import annotations

import re
from pathlib import Path

from faceprompt.data.adapters.base import ScanResult, make_row, require_dir

NAME = "utkface"
DETECT_BY_DEFAULT = False  # the chips are aligned, cropped faces
RACES = ("White", "Black", "Asian", "Indian", "Others")
GENDER_CODES = {"0": "male", "1": "female"}
_FIELDS = re.compile(r"^(\d+)_(\d+)_(\d+)(?:_(\d+))?")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def parse_name(name: str) -> dict:
    """Labels of one file name; ValueError with the reason when it doesn't follow the convention."""
    match = _FIELDS.match(name)
    if not match:
        raise ValueError("file name does not start with age_gender_race_datetime")
    age, gender, third, fourth = match.groups()
    if fourth is None:
        # Three fields: the third is the race only if it is one digit, else it's the datetime.
        if len(third) > 1:
            race_code = ""
        else:
            raise ValueError("file name has no datetime field")
    else:
        race_code = third
    if gender not in GENDER_CODES:
        raise ValueError(f"unknown gender value {gender!r} (expected 0 or 1)")
    if race_code and not (race_code.isdigit() and int(race_code) < len(RACES)):
        raise ValueError(f"unknown race value {race_code!r} (expected 0-4)")
    if int(age) > 116:
        raise ValueError(f"age {age} is outside UTKFace's 0-116")
    return {"age": int(age), "gender": GENDER_CODES[gender], "race": RACES[int(race_code)] if race_code else ""}


def scan(root, **_) -> ScanResult:
    root = require_dir(root, NAME)
    result = ScanResult()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{NAME}: no .jpg images under {root}")
    race_less = 0
    for path in files:
        try:
            labels = parse_name(path.name)
        except ValueError as err:
            result.skip(path, str(err))
            continue
        race_less += not labels["race"]
        result.rows.append(make_row(path, NAME, "file name", **labels))
    if race_less:
        result.warnings.append(f"{race_less} UTKFace file name(s) lack the race field: race left empty")
    return result
