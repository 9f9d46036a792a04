"""FER+ (FER2013 relabelled by ten annotators): ``FER2013{Train,Valid,Test}/label.csv`` and the 48x48 PNGs.

The layout is what FERPlus's ``generate_training_data.py`` writes. A ``label.csv`` line has no header:
``name,"(x, y, w, h)",`` then ten vote counts in the order of :data:`VOTE_COLUMNS`.

Labels follow FERPlus's *majority* mode: every class with a single vote is dropped as an outlier, then
the top class is the label if it holds more than half of the remaining votes, otherwise the face is
``unknown``. Faces whose label is ``unknown`` or ``NF`` (not a face) are skipped and counted, and so is
``contempt``, which has no class among RAF-DB's 7 emotions (as in the facial_expressions adapter; FER+
gives no gender that could keep the row). The official splits are the folders. No gender or age labels.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from faceprompt.data.adapters.base import ScanResult, make_row, require_dir
from faceprompt.tasks import EMOTIONS

NAME = "ferplus"
DETECT_BY_DEFAULT = False  # 48x48 face crops: the whole image is the face
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
SPLIT_FOLDERS = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
NOT_USED = {"contempt": "contempt has no RAF-DB class", "unknown": "no majority among the votes",
            "NF": "annotators say it is not a face"}
if set(VOTE_COLUMNS) - set(NOT_USED) != set(EMOTIONS):  # every kept vote class must be one of the task's
    raise ImportError(f"ferplus: vote classes {VOTE_COLUMNS} do not cover the emotions {EMOTIONS}")


def majority_label(votes: list[int]) -> str:
    """FERPlus's majority rule over ten vote counts -> a class name, ``unknown`` or ``NF``."""
    kept = [v if v > 1 else 0 for v in votes]  # a single vote is an outlier
    total = sum(kept)
    top = max(range(len(kept)), key=lambda i: kept[i])  # first of ties, as numpy's argmax
    return VOTE_COLUMNS[top] if total and kept[top] > 0.5 * total else "unknown"


def _read_votes(fields: list[str]) -> list[int] | None:
    try:
        votes = [int(float(v)) for v in fields[2:2 + len(VOTE_COLUMNS)]]
    except ValueError:
        return None
    return votes if len(votes) == len(VOTE_COLUMNS) and min(votes) >= 0 else None


def scan_split(folder: Path, split: str, result: ScanResult, dropped: Counter) -> None:
    labels = folder / "label.csv"
    if not labels.is_file():
        result.warnings.append(f"{folder}: no label.csv; split {split!r} skipped")
        return
    with open(labels, newline="", encoding="utf-8-sig") as f:
        for line_no, fields in enumerate(csv.reader(f), start=1):
            if not fields:
                continue
            votes = _read_votes(fields)
            if votes is None or not fields[0].strip():
                result.skip(labels, f"malformed line (expected name,box and {len(VOTE_COLUMNS)} vote counts)",
                            line_no)
                continue
            name = fields[0].strip()
            label = majority_label(votes)
            if label in NOT_USED:
                dropped[label] += 1
                result.skip(labels, f"{name}: {NOT_USED[label]}", line_no)
                continue
            image = folder / name
            if not image.is_file():
                dropped["missing image"] += 1
                result.skip(image, f"missing image file (named at {labels.name}:{line_no})")
                continue
            result.rows.append(make_row(image, NAME, f"{folder.name}/{labels.name}:{line_no}", split=split,
                                        emotion=label))


def scan(root, **_) -> ScanResult:
    root = require_dir(root, NAME)
    folders = {name: split for name, split in SPLIT_FOLDERS.items() if (root / name).is_dir()}
    if not folders:
        raise FileNotFoundError(f"{NAME}: none of {', '.join(SPLIT_FOLDERS)} under {root}")
    result = ScanResult()
    dropped: Counter = Counter()
    for name, split in folders.items():
        scan_split(root / name, split, result, dropped)
    if dropped:
        result.warnings.append("not used: " + ", ".join(f"{n} {k}" for k, n in sorted(dropped.items())))
    return result
