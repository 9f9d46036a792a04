"""`faceprompt pretrain --config FILE`: contrastive image-text pretraining of a small face model.

This is how the embedded ``faceclip-tiny`` backbone is made. Offline there are no SigLIP2 or PE-Core
weights, so the project trains a small model of the same kind itself: an open_clip ``CustomTextCLIP``
whose vision tower is a timm Eva (cls token, 2-D RoPE, MAP head: PE-Core's layout, so every prompt
method's hooks apply) and whose text tower is open_clip's causal transformer with the SimpleTokenizer.

Recipe, in order:

1. **Rows and splits.** The dataset adapters (``data_prep``) read UTKFace and facial_expressions in their
   published layouts (gender for facial_expressions from the LFW lists); splits are assigned exactly as
   ``faceprompt prepare`` assigns them (same keys, seed and fractions), so ``prepare``'s held-out test
   set is this model's held-out test set. Only ``train`` rows are trained on; the split of every row is
   written next to the weights (``splits.csv.gz``).
2. **Image cache.** Every image is decoded and resized once into one uint8 tensor file (``cache/``), so
   an epoch reads memory, not JPEGs.
3. **Captions from labels.** Each step writes a fresh caption per image from a random subset of its
   labels and a random template ("a photo of a 34 year old woman.", "a face of a happy man.", "a
   close-up photo of a sad face."), including the wording the zero-shot prompts in ``tasks.py`` use.
4. **Loss.** CLIP's softmax loss (or SigLIP's sigmoid loss) over images x the batch's distinct
   captions. Captions made from labels are not unique to their image: with ``positives: labels`` an
   image counts as a positive of every caption its labels agree with ("a photo of a woman." for every
   woman in the batch) and a pair whose caption names a label the image lacks is left out of the loss;
   ``positives: pairs`` is the plain one-caption-per-image objective. With label positives a third or
   more of all pairs are positive, so identical features for every image cost little: started at the
   usual logit scale (10 for SigLIP, 14 for CLIP) both losses collapsed to that within ten steps. The
   recipe starts at scale 1 (``init_logit_scale: 0``) and lets the scale grow.
5. **Sampling.** facial_expressions is almost all neutral and happy faces: its images are drawn with
   probability ``count(class) ** -emotion_balance`` (0 = as found, 1 = class-balanced).
6. **Speed.** Training drops a share of the patch tokens (FLIP-style ``patch_drop``) except in the last
   ``unmasked_epochs``, which close the gap to full-token inference.

Training runs on the CPU by default (about 40 minutes on two cores); ``device: cuda`` (or ``--device
cuda``) moves the model, the image cache and the augmentation to a GPU. Each epoch ends with an atomic
checkpoint (``--resume`` continues from it, on either device), and the run ends by writing the open_clip
local-dir folder (``open_clip_config.json`` + ``open_clip_model.safetensors`` in fp16) and a zero-shot
evaluation on the held-out test splits.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from faceprompt import backbones
from faceprompt.backbones import resolve_device
from faceprompt.io import atomic_path, write_json_atomic, write_text_atomic
from faceprompt.tasks import AGE, AGE_BINS, EMOTION, EMOTIONS, GENDER, GENDERS, age_to_bin

log = logging.getLogger(__name__)

LOSSES = ("sigmoid", "clip")
POSITIVES = ("labels", "pairs")
DATASETS = ("utkface", "facial_expressions")
# Where each dataset lives under the shared data folder.
_DATASET_DIRS = {"utkface": "UTKFace", "facial_expressions": "facial_expressions"}


# ------------------------------------------------------------------------------------------ config

@dataclass
class PretrainConfig:
    """Everything that shapes a pretraining run (read from YAML/JSON, stored with the weights)."""

    model: str = "FP-FaceCLIP-Tiny"  # open_clip config name
    data_root: str = "../shared/data"  # FACEPROMPT_SHARED_DATA overrides it
    datasets: tuple[str, ...] = DATASETS
    out: str = "faceprompt/pretrained/faceclip-tiny"  # the exported local-dir folder
    work_dir: str = "cache/pretrain/faceclip-tiny"  # checkpoints, logs, the image cache
    seed: int = 0  # training seed (init, sampling, captions, augmentation)
    split_seed: int = 0  # must equal `faceprompt prepare --seed` for the held-out sets to agree
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    image_size: int = 64  # must equal the model config's vision_cfg.image_size
    epochs: int = 10
    batch_size: int = 64
    lr: float = 5e-4
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_steps: int = 100
    loss: str = "clip"
    positives: str = "labels"
    patch_drop: float = 0.5
    unmasked_epochs: int = 1
    # The vocabulary is 49408 tokens, the captions use a few hundred: a frozen random embedding table
    # spares the optimizer three quarters of the parameters, and the text layers learn on top of it.
    freeze_token_embedding: bool = True
    # log of the starting logit scale. CLIP starts at log(1/0.07) (scale 14); with label positives that
    # made random features costlier than identical ones, and both towers collapsed within ten steps.
    # Starting at scale 1 they learn instead; the scale is learned from there.
    init_logit_scale: float | None = 0.0
    logit_scale_lr: float = 0.02  # its own, higher rate: at the shared one it would crawl up from 1
    emotion_balance: float = 0.7
    emotion_samples: int | None = 3000  # expression images drawn per epoch (None: as many as there are)
    crop_scale: tuple[float, float] = (0.75, 1.0)
    grayscale_p: float = 0.2  # facial_expressions is grayscale: don't let colour stand in for the dataset
    threads: int = 2
    device: str = "cpu"  # "cuda" trains on a GPU (images, model and augmentation all live there)
    val_limit: int = 400  # per dataset, for the per-epoch zero-shot check (0: none)
    storage_dtype: str = "float16"  # of the exported weights; loading casts to fp32
    limit: int | None = None  # seeded subset of rows per dataset (smoke runs)

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.positives not in POSITIVES:
            raise ValueError(f"positives must be one of {POSITIVES}, got {self.positives!r}")
        unknown = [d for d in self.datasets if d not in DATASETS]
        if unknown:
            raise ValueError(f"datasets {unknown} are not supported; choose from {DATASETS}")
        if not 0 <= self.patch_drop < 1:
            raise ValueError(f"patch_drop must be in [0, 1), got {self.patch_drop}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2")
        if self.storage_dtype not in ("float16", "float32"):
            raise ValueError(f"storage_dtype must be float16 or float32, got {self.storage_dtype!r}")
        try:
            torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"device: {self.device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from err

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> "PretrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(names)}")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        cfg = cls(**data)
        cfg.validate()
        return cfg

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PretrainConfig":
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


RUNTIME_FIELDS = ("device", "threads")  # where a run happens, free to change on --resume


def recipe_fields(config: dict) -> dict:
    """A config dict's fields that shape the result."""
    return {k: v for k, v in config.items() if k not in RUNTIME_FIELDS}


def shared_data_root(cfg: PretrainConfig) -> Path:
    return Path(os.environ.get("FACEPROMPT_SHARED_DATA") or cfg.data_root).expanduser()


# ------------------------------------------------------------------------------------ rows, splits

def collect_rows(cfg: PretrainConfig) -> pd.DataFrame:
    """Labelled rows of every dataset with ``faceprompt prepare``'s keys and seeded splits."""
    from data_prep import get_adapter
    from data_prep.base import has_label
    from faceprompt.data.splits import assign_splits

    root = shared_data_root(cfg)
    frames = []
    for name in cfg.datasets:
        folder = root / _DATASET_DIRS[name]
        options = {"lfw_lists": root / "LFW"} if name == "facial_expressions" and (root / "LFW").is_dir() else {}
        scan = get_adapter(name).scan(folder, seed=cfg.split_seed, **options)
        rows = [r for r in scan.rows if has_label(r)]
        for row in rows:
            row["key"] = Path(row["path"]).resolve().relative_to(folder.resolve()).as_posix()
        rows.sort(key=lambda r: r["key"])
        if cfg.limit is not None and cfg.limit < len(rows):
            picked = random.Random(cfg.split_seed).sample(range(len(rows)), cfg.limit)
            rows = [rows[i] for i in sorted(picked)]
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


# --------------------------------------------------------------------------------------- labels

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


# ------------------------------------------------------------------------------------- captions

@dataclass(frozen=True)
class Caption:
    """A caption and the labels it asserts: an image agrees with it when every asserted label matches."""

    text: str
    gender: int = -1  # -1: not mentioned
    age_range: tuple[float, float] | None = None  # inclusive years
    emotion: int = -1


# Noun-phrase templates; the first three of each task's templates in tasks.py are among them.
TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.", "a face of a {}.", "a close-up photo of a {}.", "a close-up photo of a {}'s face.",
    "a cropped photo of a {}.", "a portrait of a {}.", "a picture of a {}.", "a {}.",
)
_AGE_BIN_RANGE = {b: (lo, hi) for b, lo, hi in zip(AGE_BINS, (0, 3, 10, 20, 30, 40, 50, 60, 70),
                                                      (2, 9, 19, 29, 39, 49, 59, 69, 150))}
# (man, woman) wording of each age bin when gender is known too.
_GENDERED_AGE = {
    "0-2": ("baby boy", "baby girl"), "3-9": ("little boy", "little girl"), "10-19": ("teenage boy", "teenage girl"),
    **{b: (f"man {w.replace('person in their', 'in his')}", f"woman {w.replace('person in their', 'in her')}")
       for b, w in AGE.wording.items() if w.startswith("person in their")},
    "70+": ("man over seventy", "woman over seventy"),
}
_EMOTION_WORDS = {
    "surprise": ("surprised", "astonished"), "fear": ("fearful", "scared"), "disgust": ("disgusted",),
    "happiness": ("happy", "smiling"), "sadness": ("sad", "unhappy"), "anger": ("angry", "furious"),
    "neutral": ("neutral", "calm"),
}
AGE_TOLERANCE = 2  # "a 34 year old" agrees with ages 32..36


def _age_phrase(age: float, gender: int, rng: random.Random) -> tuple[str, tuple[float, float]]:
    """Age words (exact years or the age bin), with the gender folded in when known."""
    noun = GENDER.words(GENDERS[gender]) if gender >= 0 else "person"
    if rng.random() < 0.5:
        years = int(round(age))
        noun = "baby" if years < 2 and gender < 0 else noun
        return f"{years} year old {noun}", (years - AGE_TOLERANCE, years + AGE_TOLERANCE)
    label = age_to_bin(age)
    words = _GENDERED_AGE[label][gender] if gender >= 0 else AGE.words(label)
    return words, _AGE_BIN_RANGE[label]


def make_caption(gender: int, age: float, emotion: int, rng: random.Random) -> Caption:
    """A random caption from a random non-empty subset of the known labels."""
    known = [k for k, ok in (("gender", gender >= 0), ("age", not math.isnan(age)), ("emotion", emotion >= 0)) if ok]
    if not known:
        raise ValueError("an image without any label cannot be captioned")
    subsets = [[k] for k in known] + ([known] if len(known) > 1 else [])
    chosen = set(rng.choice(subsets))
    g = gender if "gender" in chosen else -1
    e = emotion if "emotion" in chosen else -1
    age_range = None
    if "age" in chosen:
        noun, age_range = _age_phrase(age, g, rng)
    else:
        noun = GENDER.words(GENDERS[g]) if g >= 0 else "person"
    if e >= 0:
        adjective = rng.choice(_EMOTION_WORDS[EMOTIONS[e]])
        if g < 0 and age_range is None and rng.random() < 0.25:
            noun = "face"  # "a close-up photo of a sad face." (the emotion task's own template)
        noun = f"{adjective} {noun}"
    return Caption(rng.choice(TEMPLATES).format(noun), g, age_range, e)


def caption_batch(labels: Labels, rng: random.Random) -> list[Caption]:
    return [make_caption(int(g), float(a), int(e), rng) for g, a, e in zip(labels.gender, labels.age, labels.emotion)]


def caption_targets(captions: Sequence[Caption], labels: Labels) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, mask), both [images, captions]: target 1 where the image's labels agree with every label the
    caption asserts; mask 0 where the caption asserts a label the image does not have (unknown, not wrong)."""
    n, m = len(labels), len(captions)
    targets = np.ones((n, m), dtype=bool)
    mask = np.ones((n, m), dtype=bool)
    for j, cap in enumerate(captions):
        if cap.gender >= 0:
            known = labels.gender >= 0
            mask[:, j] &= known
            targets[:, j] &= labels.gender == cap.gender
        if cap.emotion >= 0:
            known = labels.emotion >= 0
            mask[:, j] &= known
            targets[:, j] &= labels.emotion == cap.emotion
        if cap.age_range is not None:
            known = ~np.isnan(labels.age)
            mask[:, j] &= known
            lo, hi = cap.age_range
            with np.errstate(invalid="ignore"):
                targets[:, j] &= (labels.age >= lo) & (labels.age <= hi)
    targets &= mask
    return torch.from_numpy(targets).float(), torch.from_numpy(mask).float()


def pair_targets(captions: Sequence[Caption], unique: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain contrastive targets: image i matches only the text of its own caption."""
    index = {t: j for j, t in enumerate(unique)}
    targets = torch.zeros(len(captions), len(unique))
    targets[torch.arange(len(captions)), torch.tensor([index[c.text] for c in captions])] = 1.0
    return targets, torch.ones_like(targets)


# ----------------------------------------------------------------------------------------- losses

def sigmoid_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SigLIP: independent binary terms per (image, caption) pair, summed per image, averaged over images."""
    terms = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (terms * mask).sum() / logits.shape[0]


def clip_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric softmax loss, with several positives spread evenly where labels make them."""
    masked = logits.masked_fill(mask == 0, float("-inf"))

    def direction(lg: torch.Tensor, tg: torch.Tensor) -> torch.Tensor:
        rows = tg.sum(1) > 0
        log_p = F.log_softmax(lg[rows], dim=1)
        tg = tg[rows] / tg[rows].sum(1, keepdim=True)
        return -(tg * log_p.masked_fill(tg == 0, 0.0)).sum(1).mean()

    return 0.5 * (direction(masked, targets) + direction(masked.t(), targets.t()))


def contrastive_loss(kind: str, image_features: torch.Tensor, text_features: torch.Tensor,
                     logit_scale: torch.Tensor, logit_bias: torch.Tensor | None,
                     targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    img = F.normalize(image_features, dim=-1)
    txt = F.normalize(text_features, dim=-1)
    logits = logit_scale.exp() * img @ txt.t()
    if kind == "sigmoid":
        if logit_bias is not None:
            logits = logits + logit_bias
        return sigmoid_loss(logits, targets, mask)
    return clip_loss(logits, targets, mask)


# ------------------------------------------------------------------------------------ image cache

def _decode(args: tuple[str, int]) -> np.ndarray:
    from PIL import Image

    from faceprompt.data.images import load_rgb

    path, size = args
    image = load_rgb(path)
    side = min(image.size)  # centre square (the datasets' faces are already square crops)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


def build_image_cache(paths: Sequence[str], size: int, path: Path, workers: int = 2) -> torch.Tensor:
    """Decode + resize every image once into a uint8 [N, 3, S, S] tensor stored at ``path`` (reused if there)."""
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        if list(cached["paths"]) == [str(p) for p in paths] and cached["images"].shape[-1] == size:
            return cached["images"]
        log.info("image cache %s is for other images: rebuilding", path)
    import multiprocessing as mp

    from tqdm import tqdm

    jobs = [(str(p), size) for p in paths]
    start = time.perf_counter()
    with mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn").Pool(workers) as pool:
        arrays = list(tqdm(pool.imap(_decode, jobs, chunksize=64), total=len(jobs), desc="decoding", unit="img"))
    images = torch.from_numpy(np.stack(arrays))
    with atomic_path(path) as tmp:
        torch.save({"paths": [str(p) for p in paths], "images": images}, tmp)
    log.info("cached %d images at %d px in %.0f s -> %s", len(paths), size, time.perf_counter() - start, path)
    return images


# ---------------------------------------------------------------------------------- augmentation

MEAN = STD = (0.5, 0.5, 0.5)  # PE-Core's normalisation


def normalize(images_u8: torch.Tensor) -> torch.Tensor:
    return (images_u8.float() / 255.0 - 0.5) / 0.5


def augment(images_u8: torch.Tensor, gen: torch.Generator, crop_scale: tuple[float, float] = (0.75, 1.0),
            grayscale_p: float = 0.2) -> torch.Tensor:
    """Random resized square crop + horizontal flip + occasional grayscale, batched with one grid_sample."""
    b = images_u8.shape[0]
    x = normalize(images_u8)
    # The random draws come from ``gen`` on the CPU whatever the images' device: same seed, same crops.
    lo, hi = crop_scale
    side = torch.sqrt(lo + (hi - lo) * torch.rand(b, generator=gen))  # crop side as a fraction of the image
    shift = (1 - side).unsqueeze(1) * (2 * torch.rand(b, 2, generator=gen) - 1)  # keep the crop inside the image
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = side * flip
    theta[:, 1, 1] = side
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gray = (torch.rand(b, generator=gen) < grayscale_p).to(x.device)
    if gray.any():
        luma = (0.299 * x[gray, 0] + 0.587 * x[gray, 1] + 0.114 * x[gray, 2]).unsqueeze(1)
        x[gray] = luma.expand(-1, 3, -1, -1)
    return x


# ---------------------------------------------------------------------------------------- model

def create_model(name: str, seed: int, **model_kwargs) -> nn.Module:
    """A freshly initialised open_clip model of a registered config (timm towers registered on import);
    ``model_kwargs`` override config fields (e.g. ``init_logit_bias=-10`` for the sigmoid loss)."""
    import open_clip

    import faceprompt.backbones  # noqa: F401  (registers the timm towers and the model configs)

    torch.manual_seed(seed)
    return open_clip.create_model(name, pretrained=None, **model_kwargs)


def check_image_size(cfg: PretrainConfig) -> None:
    """Fail before the image cache is built when the config's size is not the model's input size."""
    import open_clip

    import faceprompt.backbones  # noqa: F401  (registers the model configs)

    model_cfg = open_clip.get_model_config(cfg.model)
    if model_cfg is None:
        raise ValueError(f"model: {cfg.model!r} is not an open_clip model config")
    size = model_cfg["vision_cfg"]["image_size"]
    if cfg.image_size != size:
        raise ValueError(f"image_size: {cfg.image_size} px, but model {cfg.model} takes {size} px images "
                         f"(vision_cfg.image_size); set image_size: {size}")


def set_patch_drop(model: nn.Module, rate: float) -> None:
    """FLIP-style token dropping while training (Eva keeps RoPE aligned with the kept tokens)."""
    from timm.layers import PatchDropoutWithIndices

    trunk = model.visual.trunk
    trunk.patch_drop = PatchDropoutWithIndices(rate, num_prefix_tokens=trunk.num_prefix_tokens) if rate > 0 else None


def short_text(model: nn.Module, length: int) -> contextlib.AbstractContextManager:
    """Run ``model``'s text tower on its first ``length`` positions (captions are short)."""
    return backbones.short_text(model.text, length)


class TokenCache:
    """Tokenized captions by text: the same few thousand captions recur all run long."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer = tokenizer
        self.context_length = context_length
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        new = [t for t in texts if t not in self._cache]
        if new:
            for text, tokens in zip(new, self.tokenizer(new, context_length=self.context_length)):
                self._cache[text] = tokens
        return torch.stack([self._cache[t] for t in texts])


@dataclass
class StepInputs:
    """One batch ready for the loss: augmented images, distinct caption tokens, targets and mask."""

    images: torch.Tensor
    tokens: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device) -> "StepInputs":
        return StepInputs(*(t.to(device, non_blocking=True) for t in dataclasses.astuple(self)))


def prepare_step(images_u8: torch.Tensor, labels: Labels, tokens: TokenCache, cfg: PretrainConfig,
                 rng: random.Random, gen: torch.Generator, train: bool = True) -> StepInputs:
    captions = caption_batch(labels, rng)
    unique = list(dict.fromkeys(c.text for c in captions))
    if cfg.positives == "labels":
        by_text = {c.text: c for c in captions}
        targets, mask = caption_targets([by_text[t] for t in unique], labels)
    else:
        targets, mask = pair_targets(captions, unique)
    images = augment(images_u8, gen, cfg.crop_scale, cfg.grayscale_p) if train else normalize(images_u8)
    return StepInputs(images, tokens(unique), targets, mask)


def step_loss(model: nn.Module, inputs: StepInputs, kind: str) -> torch.Tensor:
    image_features = model.encode_image(inputs.images)
    # Trailing columns that are padding in every caption change nothing under the causal mask: skip them.
    used = int((inputs.tokens != 0).any(0).nonzero().max()) + 1
    with short_text(model, used):
        text_features = model.encode_text(inputs.tokens[:, :used])
    return contrastive_loss(kind, image_features, text_features, model.logit_scale,
                            getattr(model, "logit_bias", None), inputs.targets, inputs.mask)


def make_optimizer(model: nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms, biases, embeddings, the logit scale/bias and the cls/query tokens."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or name == "logit_scale":
            continue
        (no_decay if p.ndim < 2 or "embedding" in name or "token" in name or "latent" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0},
              {"params": [model.logit_scale], "weight_decay": 0.0, "lr_ratio": cfg.logit_scale_lr / cfg.lr}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def lr_at(step: int, total: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then cosine from ``lr`` to ``min_lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


# -------------------------------------------------------------------------------------- sampling

def epoch_order(labels: Labels, balance: float, rng: np.random.Generator, emotion_samples: int | None = None
                ) -> np.ndarray:
    """One epoch of indices: every image without an emotion label once, and ``emotion_samples`` (default: as
    many as there are) draws of the images with one, with probability proportional to count(emotion) ** -balance.
    Why draw fewer: once balanced, the thousands of near-identical neutral and happy faces add little."""
    has_emotion = labels.emotion >= 0
    plain = np.flatnonzero(~has_emotion)
    emo = np.flatnonzero(has_emotion)
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


# ----------------------------------------------------------------------------------- evaluation

def _macro_f1(y: np.ndarray, p: np.ndarray, k: int) -> float:
    f1 = []
    for c in range(k):
        if not (y == c).any():
            continue  # a class absent from the truth has no defined recall
        tp = np.sum((p == c) & (y == c))
        precision = tp / max(1, np.sum(p == c))
        recall = tp / np.sum(y == c)
        f1.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(f1)) if f1 else float("nan")


def task_metrics(task: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """accuracy (+ 1-off for age, macro-F1 for emotion) over labelled images (y >= 0)."""
    keep = y >= 0
    y, pred = y[keep], pred[keep]
    if not len(y):
        return {}
    out = {"n": int(len(y)), "accuracy": float(np.mean(y == pred))}
    if task == "age":
        out["one_off"] = float(np.mean(np.abs(y - pred) <= 1))
    if task == "emotion":
        out["macro_f1"] = _macro_f1(y, pred, len(EMOTIONS))
    return out


def class_indices(labels: Labels) -> dict[str, np.ndarray]:
    age_bins = np.array([AGE_BINS.index(b) if (b := age_to_bin(a)) else -1 for a in labels.age], dtype=np.int64)
    return {"gender": labels.gender, "age": age_bins, "emotion": labels.emotion}


@torch.no_grad()
def zero_shot_predictions(encode_image, class_features: dict[str, torch.Tensor], images_u8: torch.Tensor,
                          batch_size: int = 256) -> dict[str, np.ndarray]:
    """Arg-max of cosine similarity to each task's class features, per image."""
    feats = torch.cat([F.normalize(encode_image(normalize(images_u8[i:i + batch_size])), dim=-1)
                       for i in range(0, len(images_u8), batch_size)])
    return {task: (feats @ text.t()).argmax(1).cpu().numpy() for task, text in class_features.items()}


@torch.no_grad()
def template_class_features(model: nn.Module, tokenizer, context_length: int) -> dict[str, torch.Tensor]:
    """The zero-shot method's class features (tasks.py templates, averaged), from a raw open_clip model."""
    out, device = {}, model.logit_scale.device
    for task in (GENDER, AGE, EMOTION):
        per_template = [F.normalize(model.encode_text(
                            tokenizer(task.prompts(t), context_length=context_length).to(device)), dim=-1)
                        for t in task.templates]
        out[task.name] = F.normalize(torch.stack(per_template).mean(0), dim=-1)
    return out


def evaluate_split(predictions: dict[str, np.ndarray], labels: Labels, datasets: np.ndarray) -> dict:
    """dataset -> task -> metrics, for every task a dataset has labels for."""
    truth = class_indices(labels)
    report: dict = {}
    for dataset in sorted(set(datasets)):
        rows = datasets == dataset
        for task, y in truth.items():
            metrics = task_metrics(task, y[rows], predictions[task][rows])
            if metrics:
                report.setdefault(dataset, {})[task] = metrics
    return report


def _backbone_name(cfg: PretrainConfig) -> str:
    """The registry name to load the exported weights under (registered on first use for a fresh config)."""
    from faceprompt.backbones import BACKBONES, BackboneSpec, register_backbone

    spec = BACKBONES.get("faceclip-tiny")
    if spec is not None and spec.model_name == cfg.model:
        return spec.name
    name = f"pretrained-{cfg.model}"
    if name not in BACKBONES:
        register_backbone(BackboneSpec(name, cfg.model, "pe-core", description="a model from faceprompt pretrain"))
    return name


def evaluate_backbone(backbone_name: str, weights: str | None, images_u8: torch.Tensor, labels: Labels,
                      datasets: np.ndarray) -> dict:
    """Zero-shot through the project's own path: load_backbone -> build_model('zero-shot')."""
    from faceprompt.backbones import load_backbone
    from faceprompt.prompts import build_model

    model = build_model("zero-shot", load_backbone(backbone_name, weights=weights)).eval()
    predictions = {t: [] for t in model.task_names}
    with torch.no_grad():
        for i in range(0, len(images_u8), 256):
            logits = model(normalize(images_u8[i:i + 256])).logits
            for t in predictions:
                predictions[t].append(logits[t].argmax(1).numpy())
    return evaluate_split({t: np.concatenate(v) for t, v in predictions.items()}, labels, datasets)


def format_report(report: dict) -> str:
    lines = []
    for dataset, tasks in report.items():
        parts = []
        for task, m in tasks.items():
            extra = "".join(f" {k}={v:.3f}" for k, v in m.items() if k not in ("n", "accuracy"))
            parts.append(f"{task} acc={m['accuracy']:.3f}{extra} (n={m['n']})")
        lines.append(f"  {dataset}: " + "; ".join(parts))
    return "\n".join(lines)


# ------------------------------------------------------------------------------ checkpoint, export

def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), **state}, tmp)


def preprocess_config(size: int) -> dict:
    return {"size": size, "mean": list(MEAN), "std": list(STD), "interpolation": "bilinear",
            "resize_mode": "squash"}


def export_local_dir(model: nn.Module, cfg: PretrainConfig, out: Path) -> Path:
    """Write the open_clip local-dir layout: open_clip_config.json + open_clip_model.safetensors."""
    import open_clip
    from safetensors.torch import save_file

    dtype = getattr(torch, cfg.storage_dtype)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / "open_clip_model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "storage_dtype": cfg.storage_dtype})
    write_json_atomic(out / "open_clip_config.json", {
        "model_cfg": open_clip.get_model_config(cfg.model),
        "preprocess_cfg": preprocess_config(cfg.image_size),
    })
    return out


# ---------------------------------------------------------------------------------------- driver

@dataclass
class PretrainData:
    """Rows (``collect_rows``' columns: dataset, key, split, gender, age, emotion) and their uint8 images
    [N, 3, S, S], row i <-> image i. ``pretrain`` builds them from the shared data unless given them."""

    rows: pd.DataFrame
    images: torch.Tensor


def load_data(cfg: PretrainConfig) -> PretrainData:
    rows = collect_rows(cfg)
    images = build_image_cache(list(rows["path"]), cfg.image_size, Path(cfg.work_dir) / f"images_{cfg.image_size}.pt",
                               workers=cfg.threads)
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


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


@dataclass
class PretrainResult:
    out: Path
    seconds: float
    parameters: int
    size_bytes: int
    test: dict = field(default_factory=dict)
    device: str = ""


def _split_data(rows: pd.DataFrame, images: torch.Tensor, split: str, limit: int | None = None,
                seed: int = 0) -> tuple[torch.Tensor, Labels, np.ndarray]:
    index = []
    for _, part in rows[rows["split"] == split].groupby("dataset"):
        idx = part.index.to_numpy()
        if limit:
            idx = np.sort(np.random.default_rng(seed).permutation(idx)[:limit])
        index.append(idx)
    index = np.concatenate(index) if index else np.array([], dtype=np.int64)
    return images[index], Labels.from_rows(rows.loc[index]), rows.loc[index, "dataset"].to_numpy()


def pretrain(cfg: PretrainConfig, resume: bool = False, progress: bool = True,
             data: PretrainData | None = None) -> PretrainResult:
    """Run the whole recipe; returns where the model went, how long it took and its test numbers.
    ``data``: rows and images to train on instead of the shared data folder's (benchmarks, tests)."""
    import open_clip
    from tqdm import tqdm

    cfg.validate()
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    work, out = Path(cfg.work_dir), Path(cfg.out)
    work.mkdir(parents=True, exist_ok=True)

    check_image_size(cfg)
    data = data or load_data(cfg)
    rows, images = data.rows.reset_index(drop=True), data.images
    if len(rows) != len(images):
        raise ValueError(f"{len(rows)} rows but {len(images)} images: each row needs its image")
    counts = split_counts(rows)
    train_rows = rows[rows["split"] == "train"]
    # uint8 images are small (about 12 KB each at 64 px): they live on the training device.
    train_images = images[torch.as_tensor(train_rows.index.to_numpy().copy())].to(device)
    train_labels = Labels.from_rows(train_rows)
    val_images, val_labels, val_sets = _split_data(rows, images, "val", cfg.val_limit, cfg.seed)
    val_images = val_images.to(device)

    scale = {} if cfg.init_logit_scale is None else {"init_logit_scale": cfg.init_logit_scale}
    model = create_model(cfg.model, cfg.seed, **scale).to(device)
    if cfg.freeze_token_embedding:
        model.text.token_embedding.weight.requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(cfg.model)
    context_length = model.text.context_length
    tokens = TokenCache(tokenizer, context_length)
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = len(epoch_order(train_labels, cfg.emotion_balance, np.random.default_rng(0),
                                      cfg.emotion_samples)) // cfg.batch_size
    total_steps = steps_per_epoch * cfg.epochs
    state = {"epoch": 0, "step": 0, "seconds": 0.0, "history": []}
    ckpt = work / "last.pt"
    if resume and ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False, map_location=device)
        if recipe_fields(saved.get("config", {})) != recipe_fields(cfg.to_dict()):
            raise ValueError(f"{ckpt} was written by another config; remove it or pass the same --config")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = {k: saved[k] for k in state}
        log.info("resumed from %s after epoch %d", ckpt, state["epoch"])
    session_start = time.perf_counter() - state["seconds"]

    for epoch in range(state["epoch"], cfg.epochs):
        # Every epoch's randomness derives from (seed, epoch): a resumed run repeats an uninterrupted one.
        rng, gen = random.Random(cfg.seed * 1000 + epoch), torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        order = epoch_order(train_labels, cfg.emotion_balance, np.random.default_rng([cfg.seed, epoch]),
                            cfg.emotion_samples)
        set_patch_drop(model, cfg.patch_drop if epoch < cfg.epochs - cfg.unmasked_epochs else 0.0)
        model.train()
        losses = []
        bar = tqdm(list(batches(order, cfg.batch_size))[:steps_per_epoch], desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, unit="step")
        for index in bar:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(state["step"], total_steps, cfg) * group.get("lr_ratio", 1.0)
            batch = train_images[torch.as_tensor(index, device=device)]
            inputs = prepare_step(batch, train_labels.take(index), tokens, cfg, rng, gen).to(device)
            loss = step_loss(model, inputs, cfg.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            state["step"] += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        set_patch_drop(model, 0.0)
        model.eval()
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - session_start}
        if cfg.val_limit:
            feats = template_class_features(model, tokenizer, context_length)
            preds = zero_shot_predictions(model.encode_image, feats, val_images)
            entry["val"] = evaluate_split(preds, val_labels, val_sets)
            log.info("epoch %d val zero-shot:\n%s", epoch + 1, format_report(entry["val"]))
        state["history"].append(entry)
        state.update(epoch=epoch + 1, seconds=time.perf_counter() - session_start)
        save_checkpoint(ckpt, model, optimizer, {**state, "config": cfg.to_dict()})
        log.info("epoch %d: loss %.4f, %.0f s so far", epoch + 1, entry["loss"], state["seconds"])

    train_seconds = state["seconds"]
    export_local_dir(model, cfg, out)
    write_splits_file(rows, out / "splits.csv.gz")
    test_images, test_labels, test_sets = _split_data(rows, images, "test")
    test = evaluate_backbone(_backbone_name(cfg), f"local-dir:{out.resolve()}", test_images, test_labels, test_sets)
    log.info("held-out test zero-shot:\n%s", format_report(test))
    size = (out / "open_clip_model.safetensors").stat().st_size
    params = sum(p.numel() for p in model.parameters())
    write_json_atomic(out / "recipe.json", {
        "command": "faceprompt pretrain --config configs/pretrain_faceclip_tiny.yaml",
        "config": cfg.to_dict(), "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1), "threads": cfg.threads,
        "device": device_name(device),
        "parameters": params, "weights_bytes": size, "splits": counts,
        "history": state["history"], "test_zero_shot": test, "torch": torch.__version__,
    })
    return PretrainResult(out, train_seconds, params, size, test, device_name(device))


# ------------------------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML or JSON file of PretrainConfig fields")
    parser.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    parser.add_argument("--out", help="override the config's output folder")
    parser.add_argument("--device", help="override the config's device (cpu, cuda)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    cfg = PretrainConfig.load(args.config)
    if args.out:
        cfg = dataclasses.replace(cfg, out=args.out)
    if args.device:
        cfg = dataclasses.replace(cfg, device=args.device)
    result = pretrain(cfg, resume=args.resume, progress=not args.quiet)
    print(f"faceclip: {result.parameters / 1e6:.2f}M parameters, {result.size_bytes / 1e6:.1f} MB, "
          f"trained in {result.seconds / 60:.1f} min on {result.device} -> {result.out}")
    print("held-out test zero-shot:\n" + format_report(result.test))
    return 0
