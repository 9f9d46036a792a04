"""LAGENDA (the age/gender benchmark published with MiVOLO): ``lagenda_annotation.csv`` + the images folder.

Layout as published: ``lagenda_annotation.csv`` next to the unpacked ``lag_benchmark/`` images; one CSV line
per annotated person, ``img_name`` the image's path relative to the CSV's folder (``lag_benchmark/<id>.jpg``),
so one photo appears on as many lines as it has people. Columns used: ``img_name``, ``age`` (exact years),
``gender`` (``M``/``F``), ``face_x0, face_y0, face_x1, face_y1`` (the face box, pixels, x0 y0 x1 y1). The
``person_*`` box and any other column are ignored. ``-1`` means unknown, for the age, the gender and the box
alike (MiVOLO's own reader treats them so).

Each row carries its face ``box``: ``prepare`` crops that box instead of running a detector (the photos are
scenes with several people, so "the largest face" would be wrong), and detection is off by default. A line
without a face box, with neither age nor gender, with an unknown gender value, an impossible age or a
malformed box is skipped with the file and line; so is a line whose image is missing.

Split: LAGENDA publishes no train/test division (the set itself is the benchmark), so rows get ``split`` =
'' and ``prepare`` gives them its seeded split, keeping every face of one photo in the same split. The thesis
trains age (with FairFace) and gender on it, reading an already converted copy, ``Lagenda/<split>/labels.csv``
with columns ``Path, Gender, Age, Facial Emotion`` (gender 0 male / 1 female, age in exact years mapped to the
same 9 bins after rounding, -1 for a missing value). The conversion from the published CSV, and so which face
box it cropped, is not in its code; its splitting script (``script/split_dataset.sh``: 80/20 train/val, seed 2025, stratified on the label
combination, per row) splits LAGENDA's ``train/labels.csv`` as it does the other datasets'.
"""
from __future__ import annotations

import csv
import math

from faceprompt.data.adapters.base import ScanResult, make_row, require_dir, require_file

NAME = "lagenda"
DETECT_BY_DEFAULT = False  # the CSV gives every face's box
LABEL_FILES = ("lagenda_annotation.csv",)
GENDER_CODES = {"M": "male", "F": "female", "-1": ""}
BOX_COLUMNS = ("face_x0", "face_y0", "face_x1", "face_y1")
COLUMNS = ("img_name", "age", "gender", *BOX_COLUMNS)
MAX_AGE = 120


def parse_age(value: str) -> str:
    """The age in years as written ('' for LAGENDA's -1); ValueError for anything else."""
    if value == "-1":
        return ""
    try:
        age = float(value)
    except ValueError:
        raise ValueError(f"unknown age value {value!r} (expected years or -1)") from None
    if not math.isfinite(age) or not 0 <= age <= MAX_AGE:
        raise ValueError(f"age {value} is outside 0-{MAX_AGE}")
    return value


def parse_box(values: list[str]) -> tuple[int, int, int, int]:
    """The face box (x0, y0, x1, y1) in whole pixels; ValueError when absent (-1) or malformed."""
    try:
        box = tuple(round(float(v)) for v in values)
    except (ValueError, OverflowError):
        raise ValueError(f"malformed face box {values}") from None
    if box == (-1, -1, -1, -1):
        raise ValueError("no face box (face_x0..face_y1 are -1)")
    x0, y0, x1, y1 = box
    if min(box) < 0 or x1 <= x0 or y1 <= y0:
        raise ValueError(f"malformed face box {list(box)} (expected 0 <= x0 < x1, 0 <= y0 < y1)")
    return box


def parse_line(raw: dict) -> tuple[str, str, str, tuple[int, int, int, int]]:
    """(image name, age, gender, box) of one CSV line read by ``csv.DictReader``; ValueError with the reason."""
    if None in raw or None in raw.values():  # DictReader's marks of too many / too few fields
        raise ValueError("malformed line: its field count differs from the header's")
    fields = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
    age = parse_age(fields["age"])
    gender = GENDER_CODES.get(fields["gender"])
    if gender is None:
        raise ValueError(f"unknown gender value {fields['gender']!r} (expected M, F or -1)")
    if not age and not gender:
        raise ValueError("neither age nor gender is known (both -1)")
    return fields["img_name"], age, gender, parse_box([fields[c] for c in BOX_COLUMNS])


def scan(root, **_) -> ScanResult:
    root = require_dir(root, NAME)
    path = require_file(root, LABEL_FILES, NAME)
    result = ScanResult()
    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = csv.DictReader(f)
        columns = [c.strip() for c in lines.fieldnames or []]
        if missing := [c for c in COLUMNS if c not in columns]:
            raise ValueError(f"{path}: line 1 lacks column(s) {missing}; found {columns}")
        for raw in lines:
            line_no = lines.line_num  # DictReader skips blank lines, so count as the reader does
            try:
                name, age, gender, box = parse_line(raw)
            except ValueError as err:
                result.skip(path, str(err), line_no)
                continue
            image = root / name
            if not name or not image.is_file():
                result.skip(image, f"missing image file (named at {path.name}:{line_no})")
                continue
            row = make_row(image, NAME, f"{path.name}:{line_no}", gender=gender, age=age)
            row["box"] = box
            result.rows.append(row)
    return result
