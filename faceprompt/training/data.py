"""The rows a run trains and validates on: its manifests' selected splits (or the thesis's 80/20 cut of them),
ages binned as the config says, subsampled, checked, and warned of repeated images and of images shared between
training and the rows it is judged on."""
from __future__ import annotations

import dataclasses
import logging

import pandas as pd
import torch

from faceprompt.data.dataset import DataSource, ManifestDataset, duplicate_warnings, load_sources
from faceprompt.data.images import check_face_files
from faceprompt.data.manifest import with_age_binning
from faceprompt.data.splits import thesis_split
from faceprompt.training.config import TrainConfig

log = logging.getLogger(__name__)


def _subset(frame, limit: int | None, seed: int):
    if limit is None or len(frame) <= limit:
        return frame
    keep = torch.randperm(len(frame), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return frame.iloc[keep.tolist()].reset_index(drop=True)


def _test_rows(cfg: TrainConfig) -> pd.DataFrame:
    """The test split of the training manifests (empty where they have none)."""
    frames = []
    for source in {s.manifest: s for s in cfg.train}.values():
        try:
            frames.append(load_sources([DataSource(source.manifest, ("test",))], "test"))
        except ValueError:  # no test rows in this manifest
            continue
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["path"])


def split_rows(cfg: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, val) before subsetting. ``val_split: thesis`` pools each training source's train and val rows (a
    dataset's official training data, of which ``faceprompt prepare`` set some aside for val) and cuts the pool as
    the thesis's ``split_csv.py`` did; ages are binned by ``age_binning`` first, so its strata see those bins."""
    if cfg.val_split != "thesis":
        return (with_age_binning(load_sources(cfg.train, "train"), cfg.age_binning),
                with_age_binning(load_sources(cfg.val_sources(), "val"), cfg.age_binning))
    pooled = [dataclasses.replace(s, splits=tuple(dict.fromkeys((*s.splits, "val")))) for s in cfg.train]
    rows = with_age_binning(load_sources(pooled, "train"), cfg.age_binning)
    held = thesis_split(rows)
    return rows[~held].reset_index(drop=True), rows[held].reset_index(drop=True)


def load_frames(cfg: TrainConfig):
    """Train and validation rows; raises naming the field for missing manifests or unlabelled tasks."""
    train, val = split_rows(cfg)
    train = _subset(train, cfg.max_train_samples, cfg.seed)
    if len(train) == 0:
        raise ValueError(f"train: no rows in {[s.to_dict() for s in cfg.train]}")
    val = _subset(val, cfg.max_val_samples, cfg.seed)
    # Every image present, readable and big enough for a face, before the model loads (headers only).
    check_face_files(list(train["path"]), where="train")
    check_face_files(list(val["path"]), where="val")
    probe = ManifestDataset(train, None, cfg.tasks)
    for task, count in probe.labelled_counts().items():
        if count == 0:
            raise ValueError(f"tasks: {task!r} has no labelled samples in the training data "
                             f"({len(train)} rows); drop it from 'tasks' or add a manifest that labels it")
    duplicate_warnings(train, "training rows", {"the validation rows": val, "the test split": _test_rows(cfg)})
    if len(val) == 0:
        log.warning("no validation rows: the epoch kept is the one with the lowest training loss")
    else:
        unjudged = [task for task, n in ManifestDataset(val, None, cfg.tasks).labelled_counts().items() if n == 0]
        if unjudged:
            log.warning("val: no row labelled for %s: the epoch is chosen on the mean of %s only", unjudged,
                        [t for t in cfg.tasks if t not in unjudged])
    return train, val
