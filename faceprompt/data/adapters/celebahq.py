"""CelebA-HQ (and CelebA): gender from the ``Male`` column of the 40-attribute file.

``CelebAMask-HQ-attribute-anno.txt`` (or CelebA's ``list_attr_celeba.txt``): line 1 the image count,
line 2 the attribute names, then ``0.jpg  -1 1 ...`` with runs of spaces. Images are looked up in
``CelebA-HQ-img/`` (or ``img_align_celeba/``). CelebA's ``list_eval_partition.txt`` (0/1/2 =
train/val/test) is used when present; CelebA-HQ has no official split, so it gets a seeded one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from faceprompt.data.adapters.base import ScanResult, Skip, find_file, make_row, require_dir, require_file

NAME = "celebahq"
DETECT_BY_DEFAULT = True  # HQ images are 1024 px with much hair and background around the face
ATTRIBUTE_FILES = ("CelebAMask-HQ-attribute-anno.txt", "list_attr_celeba.txt")
IMAGE_DIRS = ("CelebA-HQ-img", "img_align_celeba", "")
PARTITION = {"0": "train", "1": "val", "2": "test"}


@dataclass
class AttributeTable:
    """Parsed attribute file: ``rows`` are (line number, image name, {attribute: +1/-1})."""

    names: list[str]
    rows: list[tuple[int, str, dict[str, int]]] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_attributes(path: str | Path) -> AttributeTable:
    """Parse a CelebA-style attribute file; malformed rows become skips, a wrong count a warning."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path}: too short for an attribute file (needs a count line and a names line)")
    try:
        declared = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{path}: line 1 should be the image count, got {lines[0][:40]!r}") from None
    table = AttributeTable(names=lines[1].split())
    if "Male" not in table.names:
        raise ValueError(f"{path}: line 2 has no 'Male' attribute (got {table.names[:5]}...)")
    width = len(table.names)
    for line_no, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != width + 1:
            table.skipped.append(Skip(str(path), f"{len(fields) - 1} values, expected {width}", line_no))
            continue
        values = fields[1:]
        if any(v not in ("1", "-1") for v in values):
            bad = next(v for v in values if v not in ("1", "-1"))
            table.skipped.append(Skip(str(path), f"attribute value {bad!r} is not 1 or -1", line_no))
            continue
        table.rows.append((line_no, fields[0], dict(zip(table.names, map(int, values)))))
    found = len(table.rows) + len(table.skipped)
    if found != declared:
        table.warnings.append(f"{path.name}: line 1 declares {declared} images, the file has {found} rows")
    return table


def read_partition(path: Path) -> dict[str, str]:
    split = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] in PARTITION:
            split[fields[0]] = PARTITION[fields[1]]
    return split


def scan(root, **_) -> ScanResult:
    root = require_dir(root, NAME)
    attr_file = require_file(root, ATTRIBUTE_FILES, NAME, subdirs=("", "Anno"))
    table = read_attributes(attr_file)
    result = ScanResult(skipped=list(table.skipped), warnings=list(table.warnings))
    image_dir = next((root / d for d in IMAGE_DIRS if d and (root / d).is_dir()), root)
    partition_file = find_file(root, ("list_eval_partition.txt",), ("", "Eval"))
    partition = read_partition(partition_file) if partition_file else {}
    for line_no, name, attrs in table.rows:
        image = image_dir / name
        if not image.is_file():
            result.skip(image, f"missing image file (named at {attr_file.name}:{line_no})")
            continue
        gender = "male" if attrs["Male"] == 1 else "female"
        result.rows.append(make_row(image, NAME, f"{attr_file.name}:{line_no} Male", gender=gender,
                                    split=partition.get(name, "")))
    return result
