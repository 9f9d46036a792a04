"""What shapes a pretraining run: :class:`PretrainConfig`, read from YAML/JSON and checked before any work."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

import torch

from faceprompt.config import Config, coerce
from faceprompt.tasks import TASKS

LOSSES = ("sigmoid", "clip")
POSITIVES = ("labels", "pairs")
DATASETS = ("utkface", "facial_expressions", "ferplus")
DEFAULT_DATASETS = ("utkface", "facial_expressions")
CROPS = ("center", "aligned")
STORAGE_DTYPES = ("float16", "float32")
# Fields a resumed run may change: where it runs and where the finished model goes. The rest is the recipe.
RESUMABLE_CHANGES = ("device", "threads", "out")


_PROBABILITIES = ("grayscale_p", "flip_p", "color_p", "white_balance_p", "blur_p", "jpeg_p", "rotate_p")


def _is_dataset_task(text: str) -> bool:
    dataset, _, task = str(text).partition(":")
    return dataset in DATASETS and task in TASKS


def _ordered(pair, low, high) -> bool:
    return len(pair) == 2 and low <= pair[0] <= pair[1] <= high


@dataclass(frozen=True)
class PretrainConfig(Config):
    """Everything that shapes a pretraining run (read from YAML/JSON, stored with the weights)."""

    model: str = "FP-FaceCLIP-Tiny"  # open_clip config name
    data_root: str | None = None  # None: the shared data folder (faceprompt.locations)
    datasets: tuple[str, ...] = DEFAULT_DATASETS
    out: str = "faceprompt/pretrained/faceclip-tiny"  # the exported local-dir folder
    work_dir: str = "cache/pretrain/faceclip-tiny"  # checkpoints, logs, the image cache
    seed: int = 0  # training seed (init, sampling, captions, augmentation)
    split_seed: int = 0  # must equal `faceprompt prepare --seed` for the held-out sets to agree
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    image_size: int = 64  # must equal the model config's vision_cfg.image_size
    # How each image becomes the model's input: "center" (the centre square, as the shipped model learned) or
    # "aligned" (faceprompt.align's landmark crop, the framing predict and the demo give the model).
    crop: str = "center"
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
    # The zero-shot classifier's cross-entropy (prompt_loss) beside the contrastive loss, at this weight; 0:
    # contrastive only, as the recipes before it. age_neighbour_weight: the share each adjacent age bin gets
    # in that term's age target (the bins are ordered; a 29-year-old is not far from 30-39).
    prompt_loss_weight: float = 0.0
    age_neighbour_weight: float = 0.0
    emotion_balance: float = 0.7
    # Images with a gender and an age, drawn with p ~ count(gender, age bin) ** -age_balance (0: each once):
    # UTKFace holds ten faces of 20-29 for one of 70+, and the rare bins were the ones the model lost.
    age_balance: float = 0.0
    emotion_samples: int | None = 3000  # expression images drawn per epoch (None: as many as there are)
    crop_scale: tuple[float, float] = (0.75, 1.0)
    grayscale_p: float = 0.2  # facial_expressions is grayscale: don't let colour stand in for the dataset
    # Photometric and geometric changes real photos bring (see augment.Augmentation); all off by default,
    # so a config written before they existed trains as it did.
    flip_p: float = 0.5
    color_p: float = 0.0  # brightness, contrast, saturation jitter ...
    color_strength: float = 0.0  # ... each factor drawn from [1 - s, 1 + s]
    white_balance_p: float = 0.0  # per-channel gains ...
    white_balance_strength: float = 0.0  # ... drawn from [1 - s, 1 + s]
    blur_p: float = 0.0  # Gaussian blur ...
    blur_sigma: tuple[float, float] = (0.3, 1.2)  # ... sigma in pixels drawn from this range
    jpeg_p: float = 0.0  # JPEG re-encoding ...
    jpeg_quality: tuple[int, int] = (30, 90)  # ... at a quality drawn from this range
    rotate_p: float = 0.0  # small rotation ...
    rotate_degrees: float = 0.0  # ... drawn from [-d, d]
    shift: float = 0.0  # extra translation, as a fraction of the image side, drawn from [-s, s]
    threads: int = 2
    device: str = "cpu"  # "cuda" trains on a GPU (images, model and augmentation all live there)
    val_limit: int = 400  # per dataset, for the per-epoch zero-shot check (0: none)
    storage_dtype: str = "float16"  # of the exported weights; loading casts to fp32
    limit: int | None = None  # seeded subset of rows per dataset (smoke runs)
    # "dataset:task" labels kept for prompt tuning: pretraining never reads them (the held-out target,
    # as a web-scale VLM never saw "30-39" or "disgust" as a caption). Recorded in recipe.json's "roles".
    adaptation_labels: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict | None, where: str = "pretrain config") -> "PretrainConfig":
        return super().from_dict(data, where)

    def validate(self, where: str = "pretrain config") -> None:
        """Raise ValueError naming the field of the first impossible value (no files are read)."""
        hints = typing.get_type_hints(type(self))
        for item in dataclasses.fields(self):  # a config built directly, not by from_dict, is typed here
            coerce(getattr(self, item.name), hints[item.name], f"{where}: field {item.name!r}")
        unknown = [d for d in self.datasets if d not in DATASETS]
        low, high = (tuple(self.crop_scale) + (None, None))[:2]
        checks = [
            ("loss", self.loss in LOSSES, f"must be one of {list(LOSSES)}"),
            ("positives", self.positives in POSITIVES, f"must be one of {list(POSITIVES)}"),
            ("datasets", bool(self.datasets) and not unknown, f"must name some of {list(DATASETS)}"),
            ("patch_drop", 0 <= self.patch_drop < 1, "must be in [0, 1)"),
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 2, "must be >= 2 (a contrastive batch needs negatives)"),
            ("lr", self.lr > 0, "must be > 0"),
            ("min_lr", 0 <= self.min_lr <= self.lr, "must be in [0, lr]"),
            ("logit_scale_lr", self.logit_scale_lr > 0, "must be > 0"),
            ("prompt_loss_weight", self.prompt_loss_weight >= 0, "must be >= 0"),
            ("age_neighbour_weight", 0 <= self.age_neighbour_weight <= 0.5, "must be in [0, 0.5]"),
            ("warmup_steps", self.warmup_steps >= 0, "must be >= 0"),
            ("unmasked_epochs", 0 <= self.unmasked_epochs <= self.epochs, "must be in [0, epochs]"),
            ("val_fraction", 0 <= self.val_fraction < 1, "must be in [0, 1)"),
            ("test_fraction", 0 <= self.test_fraction < 1 - self.val_fraction, "must be in [0, 1 - val_fraction)"),
            ("crop_scale", len(self.crop_scale) == 2 and 0 < low <= high <= 1, "must be [low, high] in (0, 1]"),
            *[(name, 0 <= getattr(self, name) <= 1, "must be in [0, 1]") for name in _PROBABILITIES],
            ("color_strength", 0 <= self.color_strength < 1, "must be in [0, 1)"),
            ("white_balance_strength", 0 <= self.white_balance_strength < 1, "must be in [0, 1)"),
            ("blur_sigma", _ordered(self.blur_sigma, 0.1, 10.0), "must be [low, high] in [0.1, 10]"),
            ("jpeg_quality", _ordered(self.jpeg_quality, 1, 100), "must be [low, high] in [1, 100]"),
            ("rotate_degrees", 0 <= self.rotate_degrees <= 45, "must be in [0, 45]"),
            ("shift", 0 <= self.shift <= 0.25, "must be in [0, 0.25]"),
            ("threads", self.threads >= 1, "must be >= 1"),
            ("val_limit", self.val_limit >= 0, "must be >= 0"),
            ("crop", self.crop in CROPS, f"must be one of {list(CROPS)}"),
            ("storage_dtype", self.storage_dtype in STORAGE_DTYPES, f"must be one of {list(STORAGE_DTYPES)}"),
            ("limit", self.limit is None or self.limit >= 1, "must be >= 1 or null"),
            ("age_balance", 0 <= self.age_balance <= 1, "must be in [0, 1]"),
            ("adaptation_labels", all(_is_dataset_task(x) for x in self.adaptation_labels),
             f"each must be 'dataset:task' with a dataset of {list(DATASETS)} and a task of {list(TASKS)}"),
            ("emotion_samples", self.emotion_samples is None or self.emotion_samples >= 1, "must be >= 1 or null"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise ValueError(f"{where}: {name}: {getattr(self, name)!r} {message}")
        try:
            torch.device(self.device)
        except RuntimeError:
            raise ValueError(f"{where}: device: {self.device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
