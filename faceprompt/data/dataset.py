"""Torch datasets over manifests: images (or cached features) with one label per task, -1 when missing.

``ManifestDataset(manifest, transform, tasks)`` takes a manifest path or DataFrame; several
manifests (datasets) are combined with :func:`load_sources`, which selects rows by manifest,
split, optionally dataset name and a part of the split, and names the offending field when a
selection is empty.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from faceprompt.data.images import load_rgb
from faceprompt.data.manifest import SPLITS, label_indices, read_manifest
from faceprompt.tasks import DEFAULT_TASKS, TASKS

log = logging.getLogger(__name__)


def row_fractions(frame: pd.DataFrame) -> np.ndarray:
    """A stable number in [0, 1) per row, from a hash of its identity (else its file name): a split's
    parts ``[lo, hi)`` are disjoint, the same on every machine, and never share a person."""
    keys = [f"{d}/{i}" if i else f"{d}/{os.path.basename(p)}"
            for d, i, p in zip(frame["dataset"], frame["identity"], frame["path"])]
    return np.array([int.from_bytes(hashlib.sha1(k.encode()).digest()[:8], "big") / 2**64 for k in keys])


@dataclass(frozen=True)
class DataSource:
    """Rows of one manifest: its splits, optionally only some of its datasets (the ``dataset`` column) and
    only a part ``(lo, hi)`` of those rows (see :func:`row_fractions`), e.g. (0, 0.6) to tune prompts on
    and (0.6, 1) to choose the epoch on."""

    manifest: str
    splits: tuple[str, ...] = ("train",)
    datasets: tuple[str, ...] | None = None
    part: tuple[float, float] | None = None

    @classmethod
    def parse(cls, value: "str | dict | DataSource", default_splits: tuple[str, ...], where: str) -> "DataSource":
        """A manifest path (default splits) or {manifest, splits, datasets, part}."""
        if isinstance(value, DataSource):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls(str(value), tuple(default_splits))
        if not isinstance(value, dict) or "manifest" not in value:
            raise ValueError(f"{where}: expected a manifest path or {{manifest, splits, datasets, part}}, "
                             f"got {value!r}")
        unknown = sorted(set(value) - {"manifest", "splits", "datasets", "part"})
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: manifest, splits, datasets, part")
        splits = value.get("splits", default_splits)
        splits = (splits,) if isinstance(splits, str) else tuple(splits)
        datasets = value.get("datasets")
        datasets = (datasets,) if isinstance(datasets, str) else (tuple(datasets) if datasets else None)
        part = value.get("part")
        if part is not None:
            if not isinstance(part, (list, tuple)) or len(part) != 2:
                raise ValueError(f"{where}.part: expected [lo, hi], got {part!r}")
            part = (float(part[0]), float(part[1]))
        return cls(str(value["manifest"]), splits, datasets, part)

    def to_dict(self) -> dict:
        return {"manifest": self.manifest, "splits": list(self.splits),
                "datasets": None if self.datasets is None else list(self.datasets),
                "part": None if self.part is None else list(self.part)}

    def check(self, where: str) -> None:
        """Field checks that need no file access."""
        bad = [s for s in self.splits if s not in SPLITS]
        if bad or not self.splits:
            raise ValueError(f"{where}.splits: {bad or '[]'} not valid; choose from {list(SPLITS)}")
        if self.part is not None and not 0 <= self.part[0] < self.part[1] <= 1:
            raise ValueError(f"{where}.part: {list(self.part)} must be [lo, hi] with 0 <= lo < hi <= 1")

    def overlaps(self, other: "DataSource") -> bool:
        """Whether the two can select a common row (same manifest and split, overlapping parts)."""
        if self.manifest != other.manifest or not set(self.splits) & set(other.splits):
            return False
        if self.datasets is not None and other.datasets is not None and not set(self.datasets) & set(other.datasets):
            return False
        a, b = self.part or (0.0, 1.0), other.part or (0.0, 1.0)
        return a[0] < b[1] and b[0] < a[1]


def select_rows(source: DataSource, where: str = "data") -> pd.DataFrame:
    """The rows of one source; raises naming the field for a missing manifest or an unknown dataset."""
    if not Path(source.manifest).exists():
        raise FileNotFoundError(f"{where}.manifest: {source.manifest} does not exist (run `faceprompt prepare`)")
    frame = read_manifest(source.manifest)
    if source.datasets is not None:
        known = sorted(set(frame["dataset"]))
        unknown = [d for d in source.datasets if d not in known]
        if unknown:
            raise ValueError(f"{where}.datasets: {unknown} not in {source.manifest}; it holds {known}")
        frame = frame[frame["dataset"].isin(source.datasets)]
    frame = frame[frame["split"].isin(source.splits)]
    if source.part is not None and len(frame):
        fractions = row_fractions(frame)
        frame = frame[(fractions >= source.part[0]) & (fractions < source.part[1])]
    return frame.reset_index(drop=True)


def load_sources(sources: Iterable[DataSource], where: str = "data") -> pd.DataFrame:
    """Concatenate the selected rows of several manifests (paths are absolute, so folders may differ)."""
    frames = [select_rows(s, f"{where}[{i}]") for i, s in enumerate(sources)]
    if not frames:
        return pd.DataFrame(columns=["path", "dataset", "split"])
    return pd.concat(frames, ignore_index=True)


def duplicate_warnings(frame: pd.DataFrame, where: str, others: dict[str, pd.DataFrame] | None = None) -> list[str]:
    """Warnings (logged, and returned) for images listed more than once in ``frame`` (each copy counts again)
    and for images ``frame`` shares with each of ``others`` (name -> rows, e.g. the val or test split):
    the count and an example, so leakage or a doubled row is seen before it skews a number."""
    messages = []
    paths = frame["path"].astype(str)
    repeated = paths[paths.duplicated(keep=False)]
    if len(repeated):
        messages.append(f"{where}: {repeated.nunique()} image(s) listed more than once ({len(repeated)} rows; "
                        f"e.g. {repeated.iloc[0]}), each copy counted again")
    for name, other in (others or {}).items():
        shared = sorted(set(paths) & set(other["path"].astype(str)))
        if shared:
            messages.append(f"{where}: {len(shared)} image(s) also in {name} (e.g. {shared[0]}): "
                            f"a score on {name} then measures memory, not generalisation")
    for message in messages:
        log.warning(message)
    return messages


class ManifestDataset(Dataset):
    """Manifest rows as ``(image, {task: label})``; a missing label is -1.

    ``transform`` maps a PIL image to a tensor (a backbone's ``preprocess``); without one the
    dataset yields PIL images. ``labels`` is the [N, T] label matrix in ``tasks`` order.
    """

    def __init__(self, manifest: pd.DataFrame | str | os.PathLike, transform: Callable | None = None,
                 tasks: Iterable[str] = DEFAULT_TASKS):
        frame = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest)
        self.frame = frame.reset_index(drop=True)
        self.transform = transform
        self.tasks = tuple(t if isinstance(t, str) else t.name for t in tasks)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"tasks: unknown task(s) {unknown}; known: {list(TASKS)}")
        columns = [label_indices(self.frame, t) for t in self.tasks] if len(self.frame) else [[] for _ in self.tasks]
        self.labels = torch.tensor(columns, dtype=torch.long).T.reshape(len(self.frame), len(self.tasks))
        self.paths = list(self.frame["path"])

    def __len__(self) -> int:
        return len(self.paths)

    def label_dict(self, index: int) -> dict[str, torch.Tensor]:
        return {t: self.labels[index, j] for j, t in enumerate(self.tasks)}

    def __getitem__(self, index: int):
        image = load_rgb(self.paths[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.label_dict(index)

    def labelled_counts(self) -> dict[str, int]:
        """How many rows carry a label, per task."""
        return {t: int((self.labels[:, j] >= 0).sum()) for j, t in enumerate(self.tasks)}


class FeatureDataset(Dataset):
    """Precomputed image features [N, E] with the same labels as the dataset they came from."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, tasks: tuple[str, ...]):
        if len(features) != len(labels):
            raise ValueError(f"{len(features)} features but {len(labels)} label rows")
        self.features, self.labels, self.tasks = features, labels, tuple(tasks)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int):
        return self.features[index], {t: self.labels[index, j] for j, t in enumerate(self.tasks)}
