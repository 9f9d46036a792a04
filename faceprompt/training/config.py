"""What a training run is made of: :class:`TrainConfig`, read from YAML/JSON, checked before any work."""
from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceprompt.backbones import get_spec
from faceprompt.config import Config
from faceprompt.data.dataset import DataSource
from faceprompt.engine.optim import OPTIMIZERS
from faceprompt.engine.runtime import PRECISIONS
from faceprompt.engine.schedule import SCHEDULE_UNITS
from faceprompt.engine.selection import BEST_RULES
from faceprompt.io import read_json
from faceprompt.prompts import MethodOptions, resolve_method
from faceprompt.tasks import AGE_BINNINGS, DEFAULT_TASKS, TASKS
from faceprompt.training.losses import ORDINAL_PENALTIES

CLASS_BALANCE = ("none", "weights", "sampler")
MONITORS = {"accuracy": "val_mean_accuracy", "balanced_accuracy": "val_mean_balanced_accuracy"}  # -> record key
# Fields a resumed run may change: where and how fast it runs, where it lives, and how long it goes on.
# Every other field is the recipe, and a resume that changes one is refused naming it.
RESUME_CACHE = "feature-cache"  # a resumed run's image features, inside the run folder
RESUMABLE_CHANGES = ("device", "precision", "num_workers", "accelerate", "compile", "cache_dir", "run_dir", "run_id",
                     "epochs")
TASK_WEIGHTINGS = ("fixed", "loss_ema", "loss_ema_data")
TASK_BALANCE_AUGMENTS = ("thesis", "none")  # what the duplicates of task_balance go through
VAL_SPLITS = ("manifest", "thesis")  # where validation rows come from (val_split)
# ``protocol: thesis`` fills these fields (any of them still set in the config wins): the choices the
# thesis's multitask script makes at the repository's head commit 4b18297 (2025-10-17: train_multitask.py,
# with training/loss.py and training/training_functions.py); book/protocol.md lists each one and what the
# script's older version did instead. Values read from the thesis's config files (PATIENCE, EMD_WEIGHT,
# EMD_OMEGA, EMD_MU, BATCH_SIZE, EPOCHS, LR) are the multitask configs' (softpe_*.json, vpt_10_cn*.json).
THESIS_PROTOCOL: dict[str, Any] = {
    "age_ordinal": "hou", "age_ordinal_weight": 30.0, "age_ordinal_omega": 2.0, "age_ordinal_mu": -0.0025,
    # the cross-entropy's class weights are all 1; the sampler draws with the inverse class frequencies
    "class_balance": "sampler", "class_balance_power": 1.0, "class_balance_task_powers": {},
    "task_weighting": "loss_ema", "task_weight_ema": 0.95,
    "best_rule": "loss_or_accuracy", "patience": 7,
    "precision": "fp16", "grad_clip": None,
    # CosineAnnealingLR(T_max=EPOCHS, eta_min=1e-6) stepped once after every epoch
    "optimizer": "adamw", "lr": 2e-3, "min_lr": 1e-6, "lr_schedule_unit": "epoch", "weight_decay": 0.0,
    # BATCH_SIZE of vpt_10_cn*.json (softpe_*.json: 256; every configs/thesis file sets its own file's)
    "warmup_epochs": 0.0, "epochs": 50, "batch_size": 60, "seed": 2025,
    # BALANCE_TASK {"2": 0.33}; like the thesis, only a run of several tasks that include emotion is balanced
    "task_balance": {"emotion": 0.33}, "task_balance_augment": "thesis",
    # script/split_dataset.sh: each training set cut 80/20 (seed 2025); map_age_to_group rounds ages to years.
    # Only where the config names no val rows of its own.
    "val_split": "thesis", "age_binning": "round",
}
PROTOCOLS = {"faceprompt": {}, "thesis": THESIS_PROTOCOL}
# The random tiny tower that stands in for each backbone family (``stand_in``): same text-context
# placement and image path as the real towers, so every method and option runs unchanged.
STAND_INS = {"pe-core": "tiny-pe", "siglip2": "tiny-vit"}
# The tiny towers read 32 text tokens with open_clip's CLIP tokenizer, as PE-Core does: a PE-Core config
# keeps its context lengths on its stand-in (a prompt that overflows there overflows on PE-Core). A tower
# whose text is longer than its stand-in's (SigLIP2: 64) has every context length capped at this many.
STAND_IN_CONTEXT_TOKENS = 12


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything a training run needs; JSON/YAML round-trip, every bad value refused by field name.

    Manifest, run and cache paths are relative to the current directory.
    ``val=None`` validates on the ``val`` split of the training manifests; ``val=()`` skips validation.
    """

    protocol: str = "faceprompt"  # "thesis": defaults from THESIS_PROTOCOL for every field not set
    method: str = "softcpt"
    # given flat, e.g. {"tokens": 10, "context_tokens": 16}; held parsed for the method (MethodOptions)
    method_options: MethodOptions = field(default_factory=dict)
    backbone: str = "tiny-pe"
    weights: str | None = None  # None: the backbone's default; "random", a file, "local-dir:..."
    tasks: tuple[str, ...] = DEFAULT_TASKS
    train: tuple[DataSource, ...] = ()
    val: tuple[DataSource, ...] | None = None
    epochs: int = 50
    batch_size: int = 60
    lr: float = 2e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    warmup_epochs: float = 0.0
    min_lr: float = 1e-6
    lr_schedule_unit: str = "step"  # step: the cosine moves every optimizer step; epoch: once per epoch
    grad_clip: float | None = 1.0
    patience: int | None = 7  # epochs without a better validation mean accuracy; None: never stop early
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    num_workers: int = 0
    class_balance: str = "none"  # none | weights (inverse-frequency CE weights) | sampler (balanced draws)
    class_balance_tasks: tuple[str, ...] | None = None  # the tasks balanced (None: all)
    class_balance_power: float = 1.0  # weight ~ count ** -power: 1 fully balanced, 0.5 half-way (in log terms)
    # Faces with a gender and an age bin drawn with weight ~ count(gender, age bin) ** -power (0: off), so
    # children and the old are seen as often as their scarcity allows; needs the gender and age tasks.
    age_gender_balance: float = 0.0
    class_balance_task_powers: dict = field(default_factory=dict)  # per-task power, e.g. {"age": 1.0}
    age_ordinal_weight: float = 0.0
    age_ordinal: str = "emd"  # emd: squared EMD over the bins; hou: Hou et al.'s Eq. 16 over bin midpoints
    age_ordinal_omega: float = 3.0  # hou only: exponent of the normalised midpoint distance
    age_ordinal_mu: float = 0.0  # hou only: offset added to every distance (< 0 rewards near bins)
    # fixed: task_weights as given; loss_ema: each epoch 1 / an EMA of every task's loss, mean 1;
    # loss_ema_data: data share / EMA, sum 1 (the thesis script's older form; task_weights.py)
    task_weighting: str = "fixed"
    task_weight_ema: float = 0.95
    # gamma in  CE + gamma * KL(zero-shot || tuned), every task on every image (the frozen model's
    # zero-shot predictions as the anchor; costs one more frozen image pass per step)
    anchor_weight: float = 0.0
    task_weights: dict = field(default_factory=dict)
    # {task: share}: duplicate rows labelled for the task until they are that share of the training rows
    # (training/balance.py); the duplicates alone are augmented (task_balance_augment: thesis | none)
    task_balance: dict = field(default_factory=dict)
    task_balance_augment: str = "thesis"
    # On cached image features (frozen image paths) each duplicate's augmented views, cached once; an epoch sees
    # one of them, drawn from (seed, epoch). 1: one view for the whole run. Images re-augment at every load.
    feature_views: int = 1
    # manifest: train and val rows as the manifests' splits say; thesis: each training manifest's train and val
    # rows pooled and cut 80/20 per dataset as the thesis's split_csv.py (data.splits.thesis_split; val unset)
    val_split: str = "manifest"
    # how a given age becomes a bin in training and validation: floor (19.6 is 10-19) or round (20-29, the thesis's)
    age_binning: str = "floor"
    # Cross-entropy at this logit scale instead of the backbone's own (argmax and evaluation unchanged):
    # a tower trained with a small scale gives near-uniform softmaxes that barely tell right from wrong.
    loss_logit_scale: float | None = None
    monitor: str = "accuracy"  # early stopping and best epoch: mean over tasks of "accuracy" or "balanced_accuracy"
    # monitor: the metric rises; loss_or_accuracy: the validation loss (the sum of the tasks' unweighted
    # losses, as the thesis's script) falls or the metric rises
    best_rule: str = "monitor"
    run_dir: str = "runs"
    run_id: str | None = None  # None: <method>-<backbone>-<time>
    cache_dir: str | None = ".cache/faceprompt/features"  # None: never cache image features
    max_train_samples: int | None = None  # a seeded subset, for quick runs
    max_val_samples: int | None = None
    accelerate: bool | None = None  # None: Accelerate when several processes or a GPU
    compile: bool = False  # the image path through torch.compile (visual methods; compiles on the first steps)
    # An earlier run folder whose trained text prompt starts this run (same backbone, tasks, text method and
    # options, else refused): the thesis's second stage, text and visual prompts trained together.
    init_from: str | None = None
    # The text prompt's learning rate (and a trained logit scale's) as a multiple of lr; the image-side
    # prompts keep lr. 0.1: the thesis's second stage; 0: the text part stays as loaded (not optimised).
    text_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        # A config made in code (or by dataclasses.replace) gets its options parsed here; from_dict has parsed
        # them already, naming the file in any error.
        options = self.method_options
        if not isinstance(options, MethodOptions) or options.method != self.method:
            object.__setattr__(self, "method_options", MethodOptions.parse(self.method, options, "method_options"))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "train config") -> "TrainConfig":
        return super().from_dict(data, where)

    @classmethod
    def convert(cls, data: dict[str, Any], where: str) -> dict[str, Any]:
        protocol = data.get("protocol", cls.protocol)
        if protocol not in PROTOCOLS:
            raise ValueError(f"{where}: field 'protocol': {protocol!r} must be one of {list(PROTOCOLS)}")
        data = {**_protocol_defaults(protocol, data), **data}
        if "train" in data:
            data["train"] = _sources(data["train"], ("train",), "train")
        if data.get("val") is not None:
            data["val"] = _sources(data["val"], ("val",), "val")
        for key in ("method_options", "task_weights", "class_balance_task_powers", "task_balance"):
            if key in data and data[key] is None:
                data[key] = {}
        data["method_options"] = _method_options(data.get("method", cls.method), data.get("method_options", {}), where)
        return data

    def validate(self, where: str = "train config") -> None:
        """Raise ValueError naming the field of the first impossible value (no files are read)."""
        get_spec(self.backbone)  # the method and its options were checked when they were parsed
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"tasks: unknown or empty {unknown or '[]'}; known: {list(TASKS)}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks: {list(self.tasks)} names a task more than once; give each once")
        for name, ok, message in self._value_checks():
            if not ok:
                raise ValueError(f"{name}: {getattr(self, name)!r} {message}")
        for task, weight in self.task_weights.items():
            if task not in self.tasks or not isinstance(weight, (int, float)) or weight < 0:
                raise ValueError(f"task_weights: {task!r}: {weight!r} must be a weight >= 0 for one of {self.tasks}")
        for task, power in self.class_balance_task_powers.items():
            if task not in self.tasks or isinstance(power, bool) or not isinstance(power, (int, float)) \
                    or not 0 < power <= 4:
                raise ValueError(f"class_balance_task_powers: {task!r}: {power!r} must be a power in (0, 4] "
                                 f"for one of {self.tasks}")
        for task, share in self.task_balance.items():
            if task not in self.tasks or isinstance(share, bool) or not isinstance(share, (int, float)) \
                    or not 0 < share < 1:
                raise ValueError(f"task_balance: {task!r}: {share!r} must be a share in (0, 1) for one of {self.tasks}")
        if self.task_weighting != "fixed" and self.task_weights:
            raise ValueError(f"task_weights: {self.task_weights} can't be combined with task_weighting "
                             f"{self.task_weighting}, "
                             f"which sets the weights every epoch; leave one of them out")
        for i, source in enumerate(self.train):
            source.check(f"train[{i}]")
        for i, source in enumerate(self.val or ()):
            source.check(f"val[{i}]")
        for j, held in enumerate(self.val_sources()):
            for i, source in enumerate(self.train):
                if held.overlaps(source):
                    raise ValueError(f"val[{j}] {held.to_dict()} overlaps train[{i}] {source.to_dict()}: "
                                     f"give them different splits or disjoint parts")

    def _value_checks(self) -> list[tuple[str, bool, str]]:
        return [
            ("train", len(self.train) > 0, "needs at least one manifest"),
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), "must be > 0"),
            ("min_lr", 0 <= self.min_lr <= self.lr, "must be in [0, lr]"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup_epochs", 0 <= self.warmup_epochs < self.epochs, "must be in [0, epochs)"),
            ("lr_schedule_unit", self.lr_schedule_unit in SCHEDULE_UNITS, f"must be one of {list(SCHEDULE_UNITS)}"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"must be one of {list(OPTIMIZERS)}"),
            ("class_balance", self.class_balance in CLASS_BALANCE, f"must be one of {list(CLASS_BALANCE)}"),
            ("monitor", self.monitor in MONITORS, f"must be one of {list(MONITORS)}"),
            ("class_balance_tasks", self.class_balance_tasks is None or set(self.class_balance_tasks) <= set(self.tasks),
             f"must name some of the tasks {list(self.tasks)}"),
            ("class_balance_power", 0 < self.class_balance_power <= 4, "must be in (0, 4]"),
            ("age_gender_balance", 0 <= self.age_gender_balance <= 4 and (
                not self.age_gender_balance or {"gender", "age"} <= set(self.tasks)),
             "must be in [0, 4], and > 0 only with both the gender and age tasks"),
            ("precision", self.precision in PRECISIONS, f"must be one of {list(PRECISIONS)}"),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "must be > 0 or null"),
            ("patience", self.patience is None or self.patience >= 1, "must be >= 1 or null"),
            ("num_workers", self.num_workers >= 0, "must be >= 0"),
            ("age_ordinal_weight", self.age_ordinal_weight >= 0, "must be >= 0"),
            ("age_ordinal", self.age_ordinal in ORDINAL_PENALTIES, f"must be one of {list(ORDINAL_PENALTIES)}"),
            ("age_ordinal_omega", 0 < self.age_ordinal_omega < math.inf, "must be > 0"),
            ("age_ordinal_mu", math.isfinite(self.age_ordinal_mu), "must be a finite number"),
            ("task_weighting", self.task_weighting in TASK_WEIGHTINGS, f"must be one of {list(TASK_WEIGHTINGS)}"),
            ("task_weight_ema", 0 <= self.task_weight_ema < 1, "must be in [0, 1)"),
            ("best_rule", self.best_rule in BEST_RULES, f"must be one of {list(BEST_RULES)}"),
            ("anchor_weight", self.anchor_weight >= 0 and math.isfinite(self.anchor_weight), "must be >= 0"),
            ("loss_logit_scale", self.loss_logit_scale is None or 0 < self.loss_logit_scale < math.inf,
             "must be > 0 or null"),
            ("max_train_samples", self.max_train_samples is None or self.max_train_samples >= 1, "must be >= 1"),
            ("max_val_samples", self.max_val_samples is None or self.max_val_samples >= 1, "must be >= 1"),
            ("task_balance_augment", self.task_balance_augment in TASK_BALANCE_AUGMENTS,
             f"must be one of {list(TASK_BALANCE_AUGMENTS)}"),
            ("val_split", self.val_split in VAL_SPLITS and (self.val_split != "thesis" or self.val is None),
             f"must be one of {list(VAL_SPLITS)}; thesis takes the val rows from the training manifests, so "
             f"with it leave 'val' out"),
            ("feature_views", isinstance(self.feature_views, int) and self.feature_views >= 1, "must be >= 1"),
            ("age_binning", self.age_binning in AGE_BINNINGS, f"must be one of {list(AGE_BINNINGS)}"),
            ("text_lr_scale", 0 <= self.text_lr_scale < math.inf, "must be >= 0 (0: the text part is not optimised)"),
            ("init_from", self.init_from is None or bool(str(self.init_from).strip()), "must be a run folder or null"),
            ("seed", 0 <= self.seed < 2 ** 63, "must be a whole number from 0 to 2**63 - 1 (torch's seed range)"),
            ("run_id", self.run_id is None or is_plain_folder_name(self.run_id),
             "must be one plain folder name (no '/', '\\', '.' or '..'), made inside run_dir"),
            ("device", self.device in ("auto", "cpu") or self.device.startswith("cuda"), "must be auto, cpu or cuda"),
        ]

    def val_sources(self) -> tuple[DataSource, ...]:
        if self.val is not None:
            return self.val
        return tuple(DataSource(s.manifest, ("val",), s.datasets) for s in self.train)

    def run_path(self) -> Path:
        run_id = self.run_id or f"{self.method.replace('+', '_')}-{self.backbone}-{time.strftime('%Y%m%d-%H%M%S')}"
        return Path(self.run_dir) / run_id


def is_plain_folder_name(name: str) -> bool:
    """One folder name that stays where it is put: not a path, not '.' or '..', nothing hidden in it."""
    text = str(name)
    return bool(text.strip()) and text not in (".", "..") and not any(c in text for c in "/\\") \
        and text == text.strip() and text.isprintable()


def _protocol_defaults(protocol: str, data: dict[str, Any]) -> dict[str, Any]:
    """The preset's fields; the thesis balances tasks only in a run of several tasks (its multitask script), and a
    config that names its own val rows keeps them."""
    preset = dict(PROTOCOLS[protocol])
    if data.get("val") is not None:
        preset.pop("val_split", None)
    if "task_balance" in preset:
        tasks = data.get("tasks", DEFAULT_TASKS)
        tasks = [tasks] if isinstance(tasks, str) else list(tasks or ())
        preset["task_balance"] = {t: s for t, s in preset["task_balance"].items() if t in tasks} \
            if len(tasks) > 1 else {}
    return preset


def _sources(value, default_splits, where) -> tuple[DataSource, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(DataSource.parse(v, default_splits, f"{where}[{i}]") for i, v in enumerate(items))


def _method_options(method: Any, options: Any, where: str) -> MethodOptions:
    """The method's options parsed once, every error naming ``where`` and the field."""
    if not isinstance(method, str):
        raise ValueError(f"{where}: field 'method' must be a string, got {method!r}")
    if not isinstance(options, Mapping):
        raise ValueError(f"{where}: field 'method_options' must be a mapping, got {options!r}")
    try:
        resolve_method(method)
    except ValueError as err:
        raise ValueError(f"{where}: field 'method': {err}") from None
    return MethodOptions.parse(method, options, f"{where}: method_options")


def load_config(path: str | os.PathLike) -> TrainConfig:
    """A TrainConfig from a YAML or JSON file; every error names the file."""
    return TrainConfig.load(path)


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """The config with manifest, run and cache paths made absolute (a run folder then works from anywhere)."""
    absolute = lambda p: None if p is None else str(Path(p).expanduser().resolve())  # noqa: E731
    fix = lambda sources: None if sources is None else tuple(  # noqa: E731
        dataclasses.replace(s, manifest=absolute(s.manifest)) for s in sources)
    return dataclasses.replace(cfg, train=fix(cfg.train), val=fix(cfg.val), run_dir=absolute(cfg.run_dir),
                               cache_dir=absolute(cfg.cache_dir), init_from=absolute(cfg.init_from))


def stand_in(cfg: TrainConfig, manifest: str | os.PathLike,
             run_dir: str | os.PathLike | None = None) -> TrainConfig:
    """``cfg`` made to run in seconds without weights or datasets: the backbone swapped for the random tiny
    tower of its family (``STAND_INS``), the data for ``manifest`` (its train split; val from its val split),
    one epoch, precision and workers left to the machine; context lengths are kept where the tiny tower reads
    as many text tokens as the real one (PE-Core: 32, so an overflowing prompt shows), else capped at
    ``STAND_IN_CONTEXT_TOKENS``. The method, its other options and the protocol's loss choices stay. ``run_dir``: where the run goes instead; an ``init_from`` under the old run_dir
    moves with it, so a two-stage recipe still finds its first stage.
    """
    family = get_spec(cfg.backbone).family
    capped = _text_context_length(STAND_INS[family]) < _text_context_length(cfg.backbone)
    changes: dict[str, Any] = dict(
        backbone=STAND_INS[family], weights=None, train=(DataSource(str(manifest), ("train",)),), val=None,
        epochs=1, warmup_epochs=0.0, precision="auto", num_workers=0,
        method_options=MethodOptions.parse(cfg.method, {
            k: min(v, STAND_IN_CONTEXT_TOKENS) if capped and k.endswith("context_tokens") else v
            for k, v in cfg.method_options.items()}))
    if run_dir is not None:
        changes["run_dir"] = str(run_dir)
        if cfg.init_from is not None and Path(cfg.init_from).parent == Path(cfg.run_dir):
            changes["init_from"] = str(Path(run_dir) / Path(cfg.init_from).name)
    return dataclasses.replace(cfg, **changes)


def _text_context_length(backbone: str) -> int:
    """Text tokens the backbone's open_clip config reads (no weights loaded)."""
    import open_clip

    import faceprompt.backbones  # noqa: F401  (adds faceprompt's own model configs to open_clip)

    return int(open_clip.get_model_config(get_spec(backbone).model_name)["text_cfg"].get("context_length", 77))


def resume_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig stored in a run folder, placed in that folder (a copied run resumes where it is)."""
    run_dir = Path(run_dir).expanduser().resolve()
    config = read_json(run_dir / "config.json")
    if "train_config" not in config:
        raise ValueError(f"{run_dir}/config.json: no 'train_config' (not a training run)")
    # Features are cached inside the run: a resume writes nowhere but the run (or a cache_dir named now).
    stored = {**config["train_config"], "run_dir": str(run_dir.parent), "run_id": run_dir.name,
              "cache_dir": str(run_dir / RESUME_CACHE)}
    return TrainConfig.from_dict(stored, where=f"{run_dir}/config.json")
