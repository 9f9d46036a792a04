"""RAF-DB basic: ``EmoLabel/list_patition_label.txt`` (sic) with lines ``train_00001.jpg 5``.

Labels 1-7 are Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral (``tasks.EMOTIONS`` order).
Images are the aligned 100x100 faces ``Image/aligned/train_00001_aligned.jpg``, so detection is off by
default. The official test split is kept; the official train split is divided into train and val.
Gender and race come from the manual attribute files ``Annotation/manual/train_00001_manu_attri.txt`` where
they are there (five landmark lines, then gender 0 male / 1 female / 2 unsure, race 0 Caucasian /
1 African-American / 2 Asian, age group): the thesis trains and tests RAF-DB's gender too. Its age groups
(0-3, 4-19, 20-39, 40-69, 70+) do not map onto the nine bins and are not read.
"""
from __future__ import annotations

from pathlib import Path

from faceprompt.data.adapters.base import ScanResult, make_row, require_dir, require_file
from faceprompt.tasks import EMOTIONS

NAME = "rafdb"
DETECT_BY_DEFAULT = False  # aligned faces
LABEL_FILES = ("list_patition_label.txt", "list_partition_label.txt")


def aligned_path(root: Path, name: str) -> Path:
    stem = name.rsplit(".", 1)[0]
    return root / "Image" / "aligned" / f"{stem}_aligned.jpg"


GENDER_CODES = {"0": "male", "1": "female"}  # 2: unsure, left empty
RACE_CODES = {"0": "Caucasian", "1": "African-American", "2": "Asian"}


def manual_attributes(image_root: Path, name: str) -> tuple[str, str]:
    """(gender, race) from the image's manual attribute file; empty where the file or the value is missing."""
    stem = name.rsplit(".", 1)[0]
    path = image_root / "Annotation" / "manual" / f"{stem}_manu_attri.txt"
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "", ""
    values = [line for line in lines if line][5:]  # after the five landmark lines
    gender = GENDER_CODES.get(values[0], "") if values else ""
    race = RACE_CODES.get(values[1], "") if len(values) > 1 else ""
    return gender, race


def scan(root, **_) -> ScanResult:
    root = require_dir(root, NAME)
    label_file = require_file(root, LABEL_FILES, NAME, subdirs=("EmoLabel", "", "basic/EmoLabel"))
    image_root = label_file.parent.parent if label_file.parent.name == "EmoLabel" else root
    result = ScanResult()
    with open(label_file, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                result.skip(label_file, f"malformed line {line.strip()!r} (expected 'name label')", line_no)
                continue
            name, code = fields
            if not code.isdigit() or not 1 <= int(code) <= len(EMOTIONS):
                result.skip(label_file, f"unknown emotion label {code!r} (expected 1-7)", line_no)
                continue
            if name.startswith("test_"):
                split = "test"
            elif name.startswith("train_"):
                split = ""  # divided into train/val later
            else:
                result.skip(label_file, f"image name {name!r} is neither train_* nor test_*", line_no)
                continue
            image = aligned_path(image_root, name)
            if not image.is_file():
                result.skip(image, f"missing image file (named at {label_file.name}:{line_no})")
                continue
            gender, race = manual_attributes(image_root, name)
            result.rows.append(make_row(image, NAME, f"{label_file.name}:{line_no}", split=split,
                                        emotion=EMOTIONS[int(code) - 1], gender=gender, race=race))
    return result
