"""Torch datasets over manifests: images (or cached features) with one label per task, -1 when missing.

``ManifestDataset(manifest, transform, tasks)`` takes a manifest path or DataFrame; several
manifests (datasets) are combined with :func:`load_sources`, which selects rows by manifest,
split and optionally dataset name, and names the offending field when a selection is empty.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import torch
from torch.utils.data import Dataset

from faceprompt.data.images import load_rgb
from faceprompt.data.manifest import SPLITS, label_indices, read_manifest
from faceprompt.tasks import DEFAULT_TASKS, TASKS


@dataclass(frozen=True)
class DataSource:
    """Rows of one manifest: its splits, optionally only some of its datasets (the ``dataset`` column)."""

    manifest: str
    splits: tuple[str, ...] = ("train",)
    datasets: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, value: "str | dict | DataSource", default_splits: tuple[str, ...], where: str) -> "DataSource":
        """A manifest path (default splits) or {manifest, splits, datasets}."""
        if isinstance(value, DataSource):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls(str(value), tuple(default_splits))
        if not isinstance(value, dict) or "manifest" not in value:
            raise ValueError(f"{where}: expected a manifest path or {{manifest, splits, datasets}}, got {value!r}")
        unknown = sorted(set(value) - {"manifest", "splits", "datasets"})
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: manifest, splits, datasets")
        splits = value.get("splits", default_splits)
        splits = (splits,) if isinstance(splits, str) else tuple(splits)
        datasets = value.get("datasets")
        datasets = (datasets,) if isinstance(datasets, str) else (tuple(datasets) if datasets else None)
        return cls(str(value["manifest"]), splits, datasets)

    def to_dict(self) -> dict:
        return {"manifest": self.manifest, "splits": list(self.splits),
                "datasets": None if self.datasets is None else list(self.datasets)}

    def check(self, where: str) -> None:
        """Field checks that need no file access."""
        bad = [s for s in self.splits if s not in SPLITS]
        if bad or not self.splits:
            raise ValueError(f"{where}.splits: {bad or '[]'} not valid; choose from {list(SPLITS)}")


def select_rows(source: DataSource, where: str = "data") -> pd.DataFrame:
    """The rows of one source; raises naming the field for a missing manifest or an unknown dataset."""
    if not Path(source.manifest).is_file():
        raise FileNotFoundError(f"{where}.manifest: {source.manifest} does not exist (run `faceprompt prepare`)")
    frame = read_manifest(source.manifest)
    if source.datasets is not None:
        known = sorted(set(frame["dataset"]))
        unknown = [d for d in source.datasets if d not in known]
        if unknown:
            raise ValueError(f"{where}.datasets: {unknown} not in {source.manifest}; it holds {known}")
        frame = frame[frame["dataset"].isin(source.datasets)]
    return frame[frame["split"].isin(source.splits)].reset_index(drop=True)


def load_sources(sources: Iterable[DataSource], where: str = "data") -> pd.DataFrame:
    """Concatenate the selected rows of several manifests (paths are absolute, so folders may differ)."""
    frames = [select_rows(s, f"{where}[{i}]") for i, s in enumerate(sources)]
    if not frames:
        return pd.DataFrame(columns=["path", "dataset", "split"])
    return pd.concat(frames, ignore_index=True)


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
