"""LFW: ``lfw/<Name>/<Name>_NNNN.jpg`` with gender from ``male_names.txt`` / ``female_names.txt``.

The lists name image files, one a line. A few files appear in both lists: their gender is unknown
(never guessed), so those images are skipped here and get no gender in facial_expressions. LFW has no
official train/test split for classification, so it gets a seeded split that keeps each person in one
split (identity = the person's name).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from faceprompt.data.adapters.base import ScanResult, Skip, find_file, make_row, require_dir

NAME = "lfw"
DETECT_BY_DEFAULT = True  # 250x250 photos, the face about 110 px in the middle
LIST_FILES = {"male": "male_names.txt", "female": "female_names.txt"}
IMAGE_DIRS = ("lfw", "lfw-deepfunneled", "lfw_funneled", "")
_LFW_NAME = re.compile(r"^(.+)_(\d{4})\.(jpg|jpeg|png)$", re.IGNORECASE)


def person_of(file_name: str) -> str | None:
    """``George_W_Bush_0001.jpg`` -> ``George_W_Bush``; None for a name not in LFW's pattern."""
    match = _LFW_NAME.match(file_name)
    return match.group(1) if match else None


@dataclass
class GenderLists:
    """Gender by image file and by person, from LFW's two lists."""

    by_file: dict[str, str] = field(default_factory=dict)
    conflicts: set[str] = field(default_factory=set)  # files listed as both
    by_person: dict[str, str] = field(default_factory=dict)  # persons whose images agree
    skipped: list[Skip] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def gender(self, file_name: str) -> tuple[str, str]:
        """(gender, source) for an image name; ('', reason) when unknown or contradictory."""
        if file_name in self.conflicts:
            return "", "in both male_names.txt and female_names.txt"
        if file_name in self.by_file:
            gender = self.by_file[file_name]
            return gender, self.files[gender].name
        person = person_of(file_name) or _strip_index(file_name)
        if person in self.by_person:
            return self.by_person[person], f"{self.files[self.by_person[person]].name} (same person)"
        return "", "not in the LFW gender lists"


def _strip_index(file_name: str) -> str:
    return re.sub(r"_\d+$", "", file_name.rsplit(".", 1)[0])


def find_lists(*roots: Path) -> Path | None:
    """The first folder holding both list files, searching each root and its usual neighbours."""
    for root in roots:
        for folder in (root, root / "lfw", root / "LFW", root.parent / "LFW", root.parent / "lfw"):
            if all((folder / f).is_file() for f in LIST_FILES.values()):
                return folder
    return None


def read_gender_lists(folder: str | Path) -> GenderLists:
    folder = Path(folder)
    lists = GenderLists()
    seen: dict[str, set[str]] = {}
    for gender, file_name in LIST_FILES.items():
        path = folder / file_name
        if not path.is_file():
            raise FileNotFoundError(f"LFW gender list {path} does not exist")
        lists.files[gender] = path
        for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            name = line.strip()
            if not name:
                continue
            if person_of(name) is None:
                lists.skipped.append(Skip(str(path), f"malformed entry {name!r} (expected Name_NNNN.jpg)", line_no))
                continue
            seen.setdefault(name, set()).add(gender)
    persons: dict[str, set[str]] = {}
    for name, genders in seen.items():
        if len(genders) > 1:
            lists.conflicts.add(name)
        else:
            lists.by_file[name] = next(iter(genders))
        persons.setdefault(person_of(name), set()).update(genders)
    lists.by_person = {p: next(iter(g)) for p, g in persons.items() if len(g) == 1}
    return lists


def scan(root, **_) -> ScanResult:
    root = require_dir(root, NAME)
    folder = find_lists(root)
    if folder is None:
        raise FileNotFoundError(f"{NAME}: male_names.txt and female_names.txt not found under {root}")
    lists = read_gender_lists(folder)
    result = ScanResult(skipped=list(lists.skipped))
    image_dir = next((root / d for d in IMAGE_DIRS if d and (root / d).is_dir()), root)
    for name in sorted(set(lists.by_file) | lists.conflicts):
        person = person_of(name)
        image = image_dir / person / name
        if name in lists.conflicts:
            result.skip(image, "listed in both male_names.txt and female_names.txt: gender unknown")
            continue
        if not image.is_file():
            result.skip(image, f"missing image file (named in {lists.files[lists.by_file[name]].name})")
            continue
        gender = lists.by_file[name]
        result.rows.append(make_row(image, NAME, lists.files[gender].name, gender=gender, identity=person))
    listed = set(lists.by_file) | lists.conflicts
    unlisted = [p for p in image_dir.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                and p.name not in listed]
    for image in sorted(unlisted):
        result.skip(image, "image is in neither gender list")
    return result
