"""VGGFace2: gender per identity from ``identity_meta.csv``; age per image from a user CSV.

``identity_meta.csv``: header ``Class_ID, Name, Sample_Num, Flag, Gender`` (spaces after commas), rows
``n000001, "14th_Dalai_Lama",424,0, m``; Flag 0 = test, 1 = train. Images: ``test/<Class_ID>/*.jpg``
(and ``train/...``). VGGFace2 has no ages; pass ``ages=`` a CSV with columns ``path,age`` (for example
the MIVIA age annotations), ``path`` ending in ``<Class_ID>/<file>.jpg``.
Images under ``test/`` keep the official test split; ``train/`` gets a seeded identity-disjoint split.
"""
from __future__ import annotations

import csv
from pathlib import Path

from faceprompt.data.adapters.base import ScanResult, make_row, require_dir, require_file
from faceprompt.tasks import age_to_bin

NAME = "vggface2"
DETECT_BY_DEFAULT = True  # loose crops with much background
GENDER_CODES = {"m": "male", "f": "female"}
SPLIT_DIRS = {"test": "test", "train": ""}


def _key(path: str) -> str:
    """``.../n000001/0001_01.jpg`` -> ``n000001/0001_01.jpg``: how ages are matched to images."""
    parts = path.replace("\\", "/").strip().split("/")
    return "/".join(parts[-2:])


def read_identity_meta(path: Path, result: ScanResult) -> dict[str, str]:
    """Class_ID -> gender; bad rows are skipped with their line."""
    genders: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, skipinitialspace=True)
        header = [h.strip() for h in next(reader, [])]
        if "Class_ID" not in header or "Gender" not in header:
            raise ValueError(f"{path}: line 1 should name Class_ID and Gender columns, got {header}")
        id_col, gender_col = header.index("Class_ID"), header.index("Gender")
        for line_no, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) != len(header):
                result.skip(path, f"{len(fields)} fields, expected {len(header)}", line_no)
                continue
            code = fields[gender_col].strip().lower()
            if code not in GENDER_CODES:
                result.skip(path, f"unknown gender value {fields[gender_col].strip()!r} (expected m or f)", line_no)
                continue
            genders[fields[id_col].strip()] = GENDER_CODES[code]
    return genders


def read_ages(path: str | Path, result: ScanResult) -> dict[str, tuple[str, str]]:
    """``class/file`` -> (age, source) from a ``path,age`` CSV."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{NAME}: age file {path} does not exist")
    ages: dict[str, tuple[str, str]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        if not reader.fieldnames or not {"path", "age"} <= {c.strip() for c in reader.fieldnames}:
            raise ValueError(f"{path}: line 1 should be the header 'path,age', got {reader.fieldnames}")
        for line_no, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            age = row.get("age", "")
            try:
                valid = age_to_bin(float(age)) is not None
            except ValueError:
                valid = False
            if not valid:
                result.skip(path, f"age {age!r} is not a number of years in 0-150", line_no)
                continue
            number = float(age)
            ages[_key(row["path"])] = (str(int(number)) if number.is_integer() else age, f"{path.name}:{line_no}")
    return ages


def scan(root, ages: str | Path | None = None, **_) -> ScanResult:
    root = require_dir(root, NAME)
    meta = require_file(root, ("identity_meta.csv",), NAME, subdirs=("", "meta"))
    result = ScanResult()
    genders = read_identity_meta(meta, result)
    age_of = read_ages(ages, result) if ages else {}
    used_ages = 0
    for folder, split in SPLIT_DIRS.items():
        for class_dir in sorted(p for p in (root / folder).glob("*") if p.is_dir()):
            images = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            gender = genders.get(class_dir.name, "")
            for image in images:
                age, age_source = age_of.get(_key(str(image)), ("", ""))
                used_ages += bool(age)
                if not gender and not age:
                    result.skip(image, f"identity {class_dir.name} has no usable gender in {meta.name} and no age")
                    continue
                source = "; ".join(s for s in (f"{meta.name} {class_dir.name}" if gender else "", age_source) if s)
                result.rows.append(make_row(image, NAME, source, split=split, gender=gender, age=age,
                                            identity=class_dir.name))
    if not result.rows and not result.skipped:
        raise FileNotFoundError(f"{NAME}: no images under {root / 'test'} or {root / 'train'}")
    if age_of and used_ages < len(age_of):
        result.warnings.append(f"{len(age_of) - used_ages} age(s) in {Path(ages).name} name images not found")
    return result
