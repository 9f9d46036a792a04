"""facial_expressions (muxspace): ``legend.csv`` ``user.id,image,emotion`` and ``images/``.

- Labels come in mixed case (``HAPPINESS`` and ``happiness``): lower-cased.
- ``contempt`` has no class among RAF-DB's 7 emotions. It is **not** merged into ``disgust`` (a
  different expression; merging would add label noise): its emotion is left empty, and the row is kept
  only when the LFW lists give a gender for it.
- ``user.id`` is the annotator, not the person. Most image names are LFW names (``Name_NNNN.jpg``), so
  identity = the name without its trailing number, and gender comes from LFW's ``male_names.txt`` /
  ``female_names.txt`` (per image, else per person when all that person's listed images agree).
  The lists are looked for in ``lfw_lists=``, the dataset folder, or a sibling ``LFW``/``lfw`` folder.
- An image listed twice with the same label is kept once; listed with two labels, it is dropped.
- Images named in ``legend.csv`` but absent from ``images/`` (withheld) are skipped and counted.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from faceprompt.data.adapters.base import ScanResult, make_row, require_dir, require_file
from faceprompt.data.adapters.lfw import GenderLists, find_lists, read_gender_lists
from faceprompt.tasks import EMOTIONS

NAME = "facial_expressions"
DETECT_BY_DEFAULT = True  # 350x350 photos (LFW-like framing)
NO_RAF_CLASS = {"contempt"}


def identity_of(file_name: str) -> str:
    """``Tony_Blair_0023.jpg`` -> ``Tony_Blair``; ``Dwarakish_21.jpg`` -> ``Dwarakish``; else the stem."""
    stem = file_name.rsplit(".", 1)[0]
    return re.sub(r"_\d+$", "", stem)


def read_legend(path: Path, result: ScanResult) -> dict[str, list[tuple[int, str]]]:
    """image -> [(line, normalised emotion)]; unknown labels and malformed lines are skipped."""
    entries: dict[str, list[tuple[int, str]]] = {}
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header[:3] != ["user.id", "image", "emotion"]:
            raise ValueError(f"{path}: line 1 should be 'user.id,image,emotion', got {','.join(header)!r}")
        for line_no, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) != 3 or not fields[1].strip():
                result.skip(path, f"malformed line {','.join(fields)!r} (expected user.id,image,emotion)", line_no)
                continue
            label = fields[2].strip().lower()
            if label not in EMOTIONS and label not in NO_RAF_CLASS:
                result.skip(path, f"unknown emotion label {fields[2]!r}", line_no)
                continue
            entries.setdefault(fields[1].strip(), []).append((line_no, label))
    return entries


def scan(root, lfw_lists: str | Path | None = None, **_) -> ScanResult:
    root = require_dir(root, NAME)
    legend = require_file(root, ("legend.csv",), NAME, subdirs=("", "data"))
    image_dir = legend.parent / "images"
    result = ScanResult()
    folder = Path(lfw_lists) if lfw_lists else find_lists(root, legend.parent)
    genders = read_gender_lists(folder) if folder else GenderLists()
    if folder is None:
        result.warnings.append("LFW male_names.txt/female_names.txt not found: no gender labels "
                               "(pass lfw_lists= / --lfw-lists)")
    withheld = 0
    for image_name, entries in sorted(read_legend(legend, result).items()):
        lines = ",".join(str(n) for n, _ in entries)
        labels = {label for _, label in entries}
        if len(labels) > 1:
            result.skip(legend, f"conflicting labels ({image_name}: {sorted(labels)} at lines {lines})")
            continue
        for line_no, _ in entries[1:]:
            result.skip(legend, f"duplicate row (same label as line {entries[0][0]} for {image_name})", line_no)
        line_no, label = entries[0]
        image = image_dir / image_name
        if not image.is_file():
            withheld += 1
            result.skip(image, f"missing image file (named at {legend.name}:{line_no})")
            continue
        gender, gender_source = genders.gender(image_name)
        emotion = "" if label in NO_RAF_CLASS else label
        if not emotion and not gender:
            result.skip(legend, f"no RAF-DB class and no gender ({label!r}, {image_name})", line_no)
            continue
        source = f"{legend.name}:{line_no}" + (f"; gender {gender_source}" if gender else "")
        result.rows.append(make_row(image, NAME, source, gender=gender, emotion=emotion,
                                    identity=identity_of(image_name)))
    if withheld:
        result.warnings.append(f"{withheld} image(s) named in {legend.name} are not in {image_dir}")
    return result
