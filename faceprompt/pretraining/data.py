"""The data mix: labelled rows with ``faceprompt prepare``'s splits, their images, and each epoch's draw."""
from __future__ import annotations

import gzip
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from faceprompt.io import atomic_path
from faceprompt.locations import shared_data_root
from faceprompt.pretraining.cache import build_image_cache
from faceprompt.pretraining.config import PretrainConfig
from faceprompt.tasks import AGE_BINS, EMOTIONS, GENDERS, age_to_bin

log = logging.getLogger(__name__)

# Where each dataset lives under the shared data folder.
_DATASET_DIRS = {"utkface": "UTKFace", "facial_expressions": "facial_expressions", "ferplus": "FERPlus"}


@dataclass
class Labels:
    """Per-image labels as arrays: class index or -1 (gender, emotion), age in years or NaN."""

    gender: np.ndarray
    age: np.ndarray
    emotion: np.ndarray

    @classmethod
    def from_rows(cls, rows: pd.DataFrame) -> "Labels":
        gender = np.array([GENDERS.index(g) if g in GENDERS else -1 for g in rows["gender"]], dtype=np.int64)
        emotion = np.array([EMOTIONS.index(e) if e in EMOTIONS else -1 for e in rows["emotion"]], dtype=np.int64)
        age = pd.to_numeric(rows["age"].replace("", np.nan), errors="coerce").to_numpy(dtype=np.float64)
        return cls(gender, age, emotion)

    def __len__(self) -> int:
        return len(self.gender)

    def take(self, index: np.ndarray) -> "Labels":
        return Labels(self.gender[index], self.age[index], self.emotion[index])



def data_root(cfg: PretrainConfig) -> Path:
    """The config's ``data_root``, else the shared data folder."""
    return Path(cfg.data_root).expanduser() if cfg.data_root else shared_data_root()


def image_cache_path(cfg: PretrainConfig) -> Path:
    crop = "" if cfg.crop == "center" else f"_{cfg.crop}"  # the shipped recipe keeps its cache name
    return Path(cfg.work_dir) / f"images_{cfg.image_size}{crop}.safetensors"


def withhold_adaptation_labels(row: dict, dataset: str, adaptation_labels: tuple[str, ...]) -> dict:
    """The row without the labels kept for prompt tuning (``"dataset:task"``); a row left with none is
    dropped by the caller, so a held-out dataset's images never reach pretraining with a caption."""
    withheld = [task for entry in adaptation_labels for ds, _, task in [entry.partition(":")] if ds == dataset]
    if not withheld:
        return row
    row = dict(row)
    for task in withheld:
        row[task] = ""
        if task == "age":
            row["age"], row["age_bin"] = "", ""
    return row


def roles(cfg: PretrainConfig, rows: pd.DataFrame) -> dict:
    """What pretraining read and what it left for prompt tuning (recipe.json's ``"roles"``)."""
    read = {dataset: sorted(c for c in ("gender", "age_bin", "emotion") if (part[c] != "").any())
            for dataset, part in rows.groupby("dataset")}
    return {"pretraining_labels": {d: ["age" if c == "age_bin" else c for c in cs] for d, cs in sorted(read.items())},
            "adaptation_labels": list(cfg.adaptation_labels)}


def collect_rows(cfg: PretrainConfig) -> pd.DataFrame:
    """Labelled rows of every dataset with ``faceprompt prepare``'s keys and seeded splits."""
    from faceprompt.data.adapters import get_adapter, has_label
    from faceprompt.data.splits import assign_splits

    root = data_root(cfg)
    frames = []
    for name in cfg.datasets:
        folder = root / _DATASET_DIRS[name]
        options = {"lfw_lists": root / "LFW"} if name == "facial_expressions" and (root / "LFW").is_dir() else {}
        scan = get_adapter(name).scan(folder, seed=cfg.split_seed, **options)
        rows = [withhold_adaptation_labels(r, name, cfg.adaptation_labels) for r in scan.rows]
        rows = [r for r in rows if has_label(r)]
        for row in rows:
            row["key"] = Path(row["path"]).resolve().relative_to(folder.resolve()).as_posix()
        rows.sort(key=lambda r: r["key"])
        if cfg.limit is not None and cfg.limit < len(rows):
            picked = random.Random(cfg.split_seed).sample(range(len(rows)), cfg.limit)
            rows = [rows[i] for i in sorted(picked)]
        # An official split (FER+'s Train/Valid/Test folders) is kept: its Valid and Test stay held out.
        assign_splits(rows, cfg.split_seed, cfg.val_fraction, cfg.test_fraction)
        log.info("%s: %d labelled rows (%d skipped by the adapter)", name, len(rows), len(scan.skipped))
        frames.append(pd.DataFrame(rows))
    return pd.concat(frames, ignore_index=True)


def split_counts(rows: pd.DataFrame) -> dict:
    """dataset -> split -> rows and per-label counts (what the recipe records)."""
    out: dict = {}
    for (dataset, split), part in rows.groupby(["dataset", "split"]):
        entry = {"rows": len(part)}
        for column in ("gender", "age_bin", "emotion"):
            counts = part[column][part[column] != ""].value_counts()
            if len(counts):
                entry[column] = {k: int(v) for k, v in sorted(counts.items())}
        out.setdefault(dataset, {})[split] = entry
    return out


def write_splits_file(rows: pd.DataFrame, path: Path) -> None:
    """``dataset,key,split`` for every row: the record of what was trained on and what was held out."""
    frame = rows[["dataset", "key", "split"]].sort_values(["dataset", "key"])
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        # mtime=0: the same splits give the same bytes, so git sees no change on a rerun.
        with gzip.GzipFile(filename="splits.csv", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(frame.to_csv(index=False).encode())


@dataclass
class PretrainData:
    """Rows (``collect_rows``' columns: dataset, key, split, gender, age, emotion) and their uint8 images
    [N, 3, S, S], row i <-> image i. ``pretrain`` builds them from the shared data unless given them."""

    rows: pd.DataFrame
    images: torch.Tensor


def load_data(cfg: PretrainConfig) -> PretrainData:
    rows = collect_rows(cfg)
    images = build_image_cache(list(rows["path"]), cfg.image_size, image_cache_path(cfg), workers=cfg.threads,
                               crop=cfg.crop)
    return PretrainData(rows, images)


def stand_in_data(splits: dict, image_size: int, seed: int = 0) -> PretrainData:
    """Rows with the label counts of a recorded ``splits`` table (``recipe.json``'s, as ``split_counts``
    writes it) and random-pixel images: the recipe's exact workload without the images, to time it where the
    datasets are not (the numbers it trains to mean nothing)."""
    rng = np.random.default_rng(seed)
    frames = []
    for dataset, by_split in sorted(splits.items()):
        for split, entry in sorted(by_split.items()):
            n = int(entry["rows"])

            def column(counts: dict | None, draw=lambda label: label) -> np.ndarray:
                values = [draw(label) for label, k in sorted((counts or {}).items()) for _ in range(int(k))]
                if len(values) > n:
                    raise ValueError(f"{dataset}/{split}: {len(values)} labels for {n} rows")
                return rng.permutation(np.array(values + [""] * (n - len(values)), dtype=object))

            def age_in(label: str) -> str:
                low, _, high = label.rstrip("+").partition("-")
                return str(int(rng.integers(int(low), int(high or 90) + 1)))

            frames.append(pd.DataFrame({
                "dataset": dataset, "split": split, "key": [f"stand-in/{dataset}/{split}/{i:06d}" for i in range(n)],
                "gender": column(entry.get("gender")), "age": column(entry.get("age_bin"), age_in),
                "emotion": column(entry.get("emotion")),
            }))
    rows = pd.concat(frames, ignore_index=True)
    rows["path"] = rows["key"]
    rows["age_bin"] = [age_to_bin(float(a)) if a else "" for a in rows["age"]]
    images = torch.randint(0, 256, (len(rows), 3, image_size, image_size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(seed))
    return PretrainData(rows, images)


def split_data(rows: pd.DataFrame, images: torch.Tensor, split: str, limit: int | None = None,
                seed: int = 0) -> tuple[torch.Tensor, Labels, np.ndarray]:
    index = []
    for _, part in rows[rows["split"] == split].groupby("dataset"):
        idx = part.index.to_numpy()
        if limit:
            idx = np.sort(np.random.default_rng(seed).permutation(idx)[:limit])
        index.append(idx)
    index = np.concatenate(index) if index else np.array([], dtype=np.int64)
    return images[index], Labels.from_rows(rows.loc[index]), rows.loc[index, "dataset"].to_numpy()


def age_gender_groups(labels: Labels) -> np.ndarray:
    """gender x age bin as one index per image; -1 where either label is missing."""
    bins = np.array([AGE_BINS.index(age_to_bin(a)) if np.isfinite(a) else -1 for a in labels.age], dtype=np.int64)
    known = (bins >= 0) & (labels.gender >= 0)
    return np.where(known, labels.gender * len(AGE_BINS) + bins, -1)


def epoch_order(labels: Labels, balance: float, rng: np.random.Generator, emotion_samples: int | None = None,
                age_balance: float = 0.0) -> np.ndarray:
    """One epoch of indices: the images without an emotion label, and ``emotion_samples`` (default: as many
    as there are) draws of the images with one, with probability proportional to count(emotion) ** -balance.
    Why draw fewer: once balanced, the thousands of near-identical neutral and happy faces add little.
    The images without an emotion come once each, or with ``age_balance`` > 0 as many draws, those with a
    gender and an age with probability ~ count(gender, age bin) ** -age_balance (the rest at the mean weight)."""
    has_emotion = labels.emotion >= 0
    plain = np.flatnonzero(~has_emotion)
    emo = np.flatnonzero(has_emotion)
    if age_balance > 0 and len(plain):
        groups = age_gender_groups(labels.take(plain))
        counts = np.bincount(groups[groups >= 0], minlength=2 * len(AGE_BINS)).astype(np.float64)
        weights = np.ones(len(plain))
        known = groups >= 0
        if known.any():
            weights[known] = counts[groups[known]] ** -age_balance
            weights[~known] = weights[known].mean()
        plain = rng.choice(plain, size=len(plain), replace=True, p=weights / weights.sum())
    if len(emo):
        counts = np.bincount(labels.emotion[emo], minlength=len(EMOTIONS)).astype(np.float64)
        weights = counts[labels.emotion[emo]] ** -balance
        emo = rng.choice(emo, size=emotion_samples or len(emo), replace=True, p=weights / weights.sum())
    order = np.concatenate([plain, emo])
    rng.shuffle(order)
    return order


def batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order) - batch_size + 1, batch_size):  # drop the ragged last batch
        yield order[start:start + batch_size]
