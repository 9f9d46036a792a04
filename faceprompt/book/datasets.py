"""A profile's datasets: prepare them once, describe their splits and labels, show some faces."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from faceprompt.book._machinery.glue import glue
from faceprompt.locations import fill_shared
from faceprompt.tasks import TASKS

PREPARE_STAMP = "book_prepare.json"  # what a prepared folder was made from
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}

if TYPE_CHECKING:
    from faceprompt.data.prepare import PrepareReport


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a book profile: a ``faceprompt prepare`` call.

    ``root`` is the downloaded dataset (None for synthetic); ``options`` go to ``prepare_dataset``
    (``n``, ``limit``, ``size``, ``detect``, ``lfw_lists`` ...).
    """

    name: str
    root: str | None = None
    options: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str | dict) -> "DatasetSpec":
        if isinstance(value, str):
            return cls(value)
        if not isinstance(value, dict) or "name" not in value:
            raise ValueError(f"datasets: expected a name or {{name, root, ...options}}, got {value!r}")
        value = dict(value)
        return cls(value.pop("name"), value.pop("root", None), value)

    def prepare(self, out: str | os.PathLike, **defaults) -> PrepareReport:
        """Run this call into ``out``; ``defaults`` (``workers``, ``progress``) give way to the spec's options."""
        from faceprompt.data.prepare import prepare_dataset

        return prepare_dataset(self.name, self.root, out, **{**defaults, **self.options})


def parse_datasets(values: list, shared: str | os.PathLike | None = None) -> list[DatasetSpec]:
    """A profile's ``datasets`` entries as prepare calls, ``{shared}`` filled in with ``shared`` (default: the
    shared data folder). The book and ``python -m data_prep`` both read a profile's datasets here."""
    return [DatasetSpec.parse(v) for v in fill_shared(list(values), shared)]


def prepare_datasets(datasets: list, work_dir: str | os.PathLike, workers: int = 2,
                     progress: bool = False) -> dict[str, str]:
    """Prepare every dataset into ``work_dir/data/<name>``; returns name -> manifest path.

    A dataset whose name, root and options match its stamp is not prepared again.
    """
    manifests = {}
    for spec in parse_datasets(datasets):
        out = Path(work_dir) / "data" / spec.name
        manifest, stamp = out / "manifest.csv", out / PREPARE_STAMP
        wanted = {"name": spec.name, "root": spec.root, "options": spec.options}
        if not (manifest.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted):
            spec.prepare(out, workers=workers, progress=progress)
            stamp.write_text(json.dumps(wanted))
        manifests[spec.name] = str(manifest)
    return manifests


def manifest_frame(manifests: dict[str, str]) -> pd.DataFrame:
    """All rows of the prepared manifests (image paths absolute)."""
    from faceprompt.data.manifest import read_manifest

    return pd.concat([read_manifest(m) for m in manifests.values()], ignore_index=True)


def label_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy class counts: task, class, group (dataset/split), count; classes in task order, zeros kept."""
    from faceprompt.data.manifest import TASK_COLUMNS

    rows = []
    for (dataset, split), sub in frame.groupby(["dataset", "split"], sort=False):
        for task, column in TASK_COLUMNS.items():
            values = sub[column].fillna("").astype(str)
            if not (values != "").any():
                continue
            counts = values.value_counts()
            rows += [{"task": task, "class": c, "group": f"{dataset}/{split}", "dataset": dataset, "split": split,
                      "count": int(counts.get(c, 0))} for c in TASKS[task].classes]
    return pd.DataFrame(rows)


def split_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows per dataset and split (train, val, test), and how many carry each task's label."""
    from faceprompt.data.manifest import TASK_COLUMNS

    rows = []
    for (dataset, split), sub in frame.groupby(["dataset", "split"]):
        row = {"dataset": dataset, "split": split, "rows": len(sub)}
        for task, column in TASK_COLUMNS.items():
            row[f"{task} labelled"] = int((sub[column].fillna("") != "").sum())
        rows.append(row)
    return pd.DataFrame(rows).sort_values(
        ["dataset", "split"], key=lambda s: s.map(SPLIT_ORDER) if s.name == "split" else s, ignore_index=True)


def sample_faces(frame: pd.DataFrame, n: int = 12, seed: int = 0) -> tuple[list, list[str]]:
    """``n`` test faces (PIL) with a short label string each, for a picture of the data."""
    from faceprompt.data.images import load_rgb

    pool = test_rows(frame)
    picked = pool.sample(min(n, len(pool)), random_state=seed)
    images, titles = [], []
    for _, row in picked.iterrows():
        images.append(load_rgb(row["path"]))
        titles.append(" ".join(v for v in (row["gender"], row["age_bin"], row["emotion"]) if v))
    return images, titles


def test_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The test split's rows, or every row when there is no test split."""
    pool = frame[frame["split"] == "test"]
    return pool if len(pool) else frame


def glue_data_summary(frame: pd.DataFrame, datasets: list) -> pd.DataFrame:
    """Glue the row count (``data-rows``), dataset names (``data-datasets``), the data source
    (``data-source``) and the split table (``data-splits-table``); returns the split table."""
    splits = split_table(frame)
    glue("data-rows", f"{len(frame):,}")
    glue("data-datasets", ", ".join(sorted(frame["dataset"].unique())))
    glue("data-source", data_source(datasets))
    glue("data-splits-table", splits, display=False)
    return splits


def data_source(datasets: list) -> str:
    """One phrase on the run's data ('synthetic faces' or 'real faces: utkface, facial_expressions')."""
    specs = parse_datasets(datasets)
    names = [spec.name for spec in specs]
    real = [n + (f" ({' and '.join(spec.options['splits'])} splits)" if spec.options.get("splits") else "")
            for n, spec in zip(names, specs) if n != "synthetic"]
    text = ("real faces: " + ", ".join(real) + (" and synthetic faces" if "synthetic" in names else "")
            if real else "synthetic faces")
    return text
