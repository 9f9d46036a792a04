"""What every dataset adapter returns: manifest rows pointing at the source images, and the skips.

An adapter reads a dataset in the layout its authors publish and never guesses a label: a field the
dataset doesn't give stays empty, so the multitask loss masks it. Anything it can't use (a missing
image, a malformed line, an unknown label value) becomes a ``Skip`` naming the file, the line and why,
and the adapter goes on with the next row.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from faceprompt.tasks import age_to_bin


@dataclass(frozen=True)
class Skip:
    """One input the adapter (or the cropper) could not use."""

    file: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"


@dataclass
class ScanResult:
    """Rows with absolute source ``path`` and ``split`` = '' where the dataset has no official split."""

    rows: list[dict] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def skip(self, file: str | os.PathLike, reason: str, line: int | None = None) -> None:
        self.skipped.append(Skip(str(file), reason, line))


def make_row(path: str | os.PathLike, dataset: str, source: str, *, split: str = "", gender: str = "",
             age: str | int | float = "", emotion: str = "", race: str = "", identity: str = "",
             age_bin: str = "") -> dict:
    """A manifest row; ``age_bin`` follows from a raw ``age`` unless the dataset gives only the bin."""
    age = "" if age in ("", None) else str(age)
    if age and not age_bin:
        age_bin = age_to_bin(age) or ""
    return {"path": str(path), "dataset": dataset, "split": split, "gender": gender, "age": age,
            "age_bin": age_bin, "emotion": emotion, "race": race, "identity": identity, "source": source}


def has_label(row: dict) -> bool:
    return any(row.get(k) for k in ("gender", "age_bin", "emotion"))


def find_file(root: Path, names: tuple[str, ...], subdirs: tuple[str, ...] = ("",)) -> Path | None:
    """The first ``root/subdir/name`` that exists (datasets get unpacked one folder deeper or not)."""
    for sub in subdirs:
        for name in names:
            candidate = root / sub / name if sub else root / name
            if candidate.is_file():
                return candidate
    return None


def require_file(root: Path, names: tuple[str, ...], dataset: str, subdirs: tuple[str, ...] = ("",)) -> Path:
    found = find_file(root, names, subdirs)
    if found is None:
        looked = [str(Path(s) / n) for s in subdirs for n in names]
        raise FileNotFoundError(f"{dataset}: no label file under {root} (looked for {', '.join(looked)})")
    return found


def require_dir(root: str | os.PathLike, dataset: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset}: dataset folder {root} does not exist")
    return root
