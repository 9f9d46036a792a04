"""Training: a prompt method, manifests and a :class:`TrainConfig` in; a run folder out.

``fit(config)`` writes ``<run_dir>/<run_id>/``:

==================== ==================================================================
config.json          the method (from ``save_prompts``) plus ``train_config``, best epoch
prompts.safetensors  the trained tensors of the best validation epoch
metrics.csv / .json  one row per epoch: lr, train loss terms, val loss and accuracies
checkpoint.pt        last finished epoch: trainable tensors, optimizer, scheduler, RNG
                     states, early-stopping state (one atomic file; loaded weights_only)
checkpoint.json      the same epoch's counters, readable
==================== ==================================================================

Determinism: the shuffling of epoch ``e`` comes from a generator seeded by ``(seed, e)``, and the
global RNG state (used by dropout and V2PT's sampling) is saved with every checkpoint, so a run
interrupted after any epoch and resumed ends, on CPU, with exactly the metrics of an
uninterrupted one. Methods whose image path is frozen train on cached image features.
One process is the default; ``accelerate launch -m faceprompt train ...`` runs data-parallel
through Hugging Face Accelerate with no change to the config.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import math
import os
import random
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from faceprompt import metrics
from faceprompt.backbones import get_spec, load_backbone, resolve_device
from faceprompt.checkpoint import save_prompts
from faceprompt.data.dataset import DataSource, FeatureDataset, ManifestDataset, load_sources
from faceprompt.features import cached_features
from faceprompt.io import atomic_path, read_json, write_json_atomic
from faceprompt.losses import anchor_divergence, inverse_frequency_weights, multitask_loss
from faceprompt.prompts import PromptModel, build_model, resolve_method
from faceprompt.prompts.base import TEXT_PROMPTS, VISUAL_PROMPTS, _split_config
from faceprompt.tasks import DEFAULT_TASKS, TASKS

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_INFO = "checkpoint.json"
OPTIMIZERS = ("adamw", "sgd")
CLASS_BALANCE = ("none", "weights", "sampler")
MONITORS = {"accuracy": "val_mean_accuracy", "balanced_accuracy": "val_mean_balanced_accuracy"}  # -> record key
PRECISIONS = ("auto", "fp32", "bf16")


# --- the config ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; JSON/YAML round-trip, every bad value refused by field name.

    Manifest, run and cache paths are relative to the current directory.
    ``val=None`` validates on the ``val`` split of the training manifests; ``val=()`` skips validation.
    """

    method: str = "softcpt"
    method_options: dict = field(default_factory=dict)  # flat, e.g. {"tokens": 10, "context_tokens": 16}
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
    grad_clip: float | None = 1.0
    patience: int | None = 7  # epochs without a better validation mean accuracy; None: never stop early
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    num_workers: int = 0
    class_balance: str = "none"  # none | weights (inverse-frequency CE weights) | sampler (balanced draws)
    class_balance_tasks: tuple[str, ...] | None = None  # the tasks balanced (None: all)
    class_balance_power: float = 1.0  # weight ~ count ** -power: 1 fully balanced, 0.5 half-way (in log terms)
    age_ordinal_weight: float = 0.0
    # gamma in  CE + gamma * KL(zero-shot || tuned), every task on every image (the frozen model's
    # zero-shot predictions as the anchor; costs one more frozen image pass per step)
    anchor_weight: float = 0.0
    task_weights: dict = field(default_factory=dict)
    # Cross-entropy at this logit scale instead of the backbone's own (argmax and evaluation unchanged):
    # a tower trained with a small scale gives near-uniform softmaxes that barely tell right from wrong.
    loss_logit_scale: float | None = None
    monitor: str = "accuracy"  # early stopping and best epoch: mean over tasks of "accuracy" or "balanced_accuracy"
    run_dir: str = "runs"
    run_id: str | None = None  # None: <method>-<backbone>-<time>
    cache_dir: str | None = ".cache/faceprompt/features"  # None: never cache image features
    max_train_samples: int | None = None  # a seeded subset, for quick runs
    max_val_samples: int | None = None
    accelerate: bool | None = None  # None: Accelerate when several processes or a GPU

    # -- round trip --

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tasks"] = list(self.tasks)
        data["train"] = [s.to_dict() for s in self.train]
        data["val"] = None if self.val is None else [s.to_dict() for s in self.val]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "train config") -> "TrainConfig":
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
        data = dict(data)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(names)}")
        if "train" in data:
            data["train"] = _sources(data["train"], ("train",), "train")
        if data.get("val") is not None:
            data["val"] = _sources(data["val"], ("val",), "val")
        for key in ("tasks", "class_balance_tasks"):
            if data.get(key) is not None:
                data[key] = (data[key],) if isinstance(data[key], str) else tuple(data[key])
        for key in ("method_options", "task_weights"):
            if key in data and data[key] is None:
                data[key] = {}
            if key in data and not isinstance(data[key], dict):
                raise ValueError(f"{where}: field {key!r} must be a mapping, got {data[key]!r}")
        _check_types(cls, data, where)
        return cls(**data)

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    # -- checks that need no files or weights --

    def validate(self) -> None:
        """Raise ValueError naming the field of the first impossible value."""
        resolve_method(self.method)  # "unknown method ..." names the method
        _check_method_options(self.method, self.method_options)
        get_spec(self.backbone)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"tasks: unknown or empty {unknown or '[]'}; known: {list(TASKS)}")
        checks = [
            ("train", len(self.train) > 0, "needs at least one manifest"),
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), "must be > 0"),
            ("min_lr", 0 <= self.min_lr <= self.lr, "must be in [0, lr]"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup_epochs", 0 <= self.warmup_epochs < self.epochs, "must be in [0, epochs)"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"must be one of {list(OPTIMIZERS)}"),
            ("class_balance", self.class_balance in CLASS_BALANCE, f"must be one of {list(CLASS_BALANCE)}"),
            ("monitor", self.monitor in MONITORS, f"must be one of {list(MONITORS)}"),
            ("class_balance_tasks", self.class_balance_tasks is None or set(self.class_balance_tasks) <= set(self.tasks),
             f"must name some of the tasks {list(self.tasks)}"),
            ("class_balance_power", 0 < self.class_balance_power <= 4, "must be in (0, 4]"),
            ("precision", self.precision in PRECISIONS, f"must be one of {list(PRECISIONS)}"),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "must be > 0 or null"),
            ("patience", self.patience is None or self.patience >= 1, "must be >= 1 or null"),
            ("num_workers", self.num_workers >= 0, "must be >= 0"),
            ("age_ordinal_weight", self.age_ordinal_weight >= 0, "must be >= 0"),
            ("anchor_weight", self.anchor_weight >= 0 and math.isfinite(self.anchor_weight), "must be >= 0"),
            ("loss_logit_scale", self.loss_logit_scale is None or (
                isinstance(self.loss_logit_scale, (int, float)) and 0 < self.loss_logit_scale < math.inf),
             "must be > 0 or null"),
            ("max_train_samples", self.max_train_samples is None or self.max_train_samples >= 1, "must be >= 1"),
            ("max_val_samples", self.max_val_samples is None or self.max_val_samples >= 1, "must be >= 1"),
            ("device", self.device in ("auto", "cpu") or self.device.startswith("cuda"), "must be auto, cpu or cuda"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise ValueError(f"{name}: {getattr(self, name)!r} {message}")
        for task, weight in self.task_weights.items():
            if task not in self.tasks or not isinstance(weight, (int, float)) or weight < 0:
                raise ValueError(f"task_weights: {task!r}: {weight!r} must be a weight >= 0 for one of {self.tasks}")
        for i, source in enumerate(self.train):
            source.check(f"train[{i}]")
        for i, source in enumerate(self.val or ()):
            source.check(f"val[{i}]")
        for j, held in enumerate(self.val_sources()):
            for i, source in enumerate(self.train):
                if held.overlaps(source):
                    raise ValueError(f"val[{j}] {held.to_dict()} overlaps train[{i}] {source.to_dict()}: "
                                     f"give them different splits or disjoint parts")

    def val_sources(self) -> tuple[DataSource, ...]:
        if self.val is not None:
            return self.val
        return tuple(DataSource(s.manifest, ("val",), s.datasets) for s in self.train)

    def run_path(self) -> Path:
        run_id = self.run_id or f"{self.method.replace('+', '_')}-{self.backbone}-{time.strftime('%Y%m%d-%H%M%S')}"
        return Path(self.run_dir) / run_id


def _sources(value, default_splits, where) -> tuple[DataSource, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(DataSource.parse(v, default_splits, f"{where}[{i}]") for i, v in enumerate(items))


def _check_types(cls, data: dict, where: str) -> None:
    """Numbers and strings where the dataclass says so (YAML turns 2e-3 into a string, 'yes' into True)."""
    hints = typing.get_type_hints(cls)
    for key, value in list(data.items()):
        hint = str(hints[key])
        if value is None:
            if "None" not in hint:
                raise ValueError(f"{where}: field {key!r} may not be null")
            continue
        if hint.startswith("<class 'float'>") or hint.startswith("float"):
            try:
                data[key] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: field {key!r} must be a number, got {value!r}") from None
        elif hint.startswith("<class 'int'>") or hint.startswith("int"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where}: field {key!r} must be an integer, got {value!r}")
        elif hint.startswith("<class 'str'>") or hint.startswith("str"):
            if not isinstance(value, str):
                raise ValueError(f"{where}: field {key!r} must be a string, got {value!r}")


def _check_method_options(method: str, options: dict) -> None:
    """Method options are checked against the method's component configs without building it."""
    preset = resolve_method(method)
    try:
        text_cfg, visual_cfg = _split_config(preset, options)
        TEXT_PROMPTS[preset.text].config_class.from_dict(text_cfg, f"{method}.text")
        VISUAL_PROMPTS[preset.visual].config_class.from_dict(visual_cfg, f"{method}.visual")
    except (TypeError, ValueError) as err:
        raise ValueError(f"method_options: {err}") from None


def load_config(path: str | os.PathLike) -> TrainConfig:
    """A TrainConfig from a YAML or JSON file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except yaml.YAMLError as err:
        raise ValueError(f"config {path}: not valid YAML/JSON ({err})") from None
    return TrainConfig.from_dict(data or {}, where=f"config {path}")


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """The config with manifest, run and cache paths made absolute (a run folder then works from anywhere)."""
    absolute = lambda p: None if p is None else str(Path(p).expanduser().resolve())  # noqa: E731
    fix = lambda sources: None if sources is None else tuple(  # noqa: E731
        dataclasses.replace(s, manifest=absolute(s.manifest)) for s in sources)
    return dataclasses.replace(cfg, train=fix(cfg.train), val=fix(cfg.val), run_dir=absolute(cfg.run_dir),
                               cache_dir=absolute(cfg.cache_dir))


# --- data ----------------------------------------------------------------------------------------

def _subset(frame, limit: int | None, seed: int):
    if limit is None or len(frame) <= limit:
        return frame
    keep = torch.randperm(len(frame), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return frame.iloc[keep.tolist()].reset_index(drop=True)


def load_frames(cfg: TrainConfig):
    """Train and validation rows; raises naming the field for missing manifests or unlabelled tasks."""
    train = _subset(load_sources(cfg.train, "train"), cfg.max_train_samples, cfg.seed)
    if len(train) == 0:
        raise ValueError(f"train: no rows in {[s.to_dict() for s in cfg.train]}")
    val = _subset(load_sources(cfg.val_sources(), "val"), cfg.max_val_samples, cfg.seed)
    probe = ManifestDataset(train, None, cfg.tasks)
    for task, count in probe.labelled_counts().items():
        if count == 0:
            raise ValueError(f"tasks: {task!r} has no labelled samples in the training data "
                             f"({len(train)} rows); drop it from 'tasks' or add a manifest that labels it")
    return train, val


class EpochSampler(Sampler[int]):
    """A fresh order each epoch from a generator seeded by (seed, epoch): resumable by construction.

    With ``weights`` it draws ``len`` indices with replacement in proportion to them (class balance).
    """

    def __init__(self, size: int, seed: int, weights: torch.Tensor | None = None):
        self.size, self.seed, self.weights, self.epoch = size, seed, weights, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            return iter(torch.randperm(self.size, generator=g).tolist())
        return iter(torch.multinomial(self.weights, self.size, replacement=True, generator=g).tolist())


def balanced_sample_weights(labels: torch.Tensor, columns: list[int] | None = None,
                            power: float = 1.0) -> torch.Tensor:
    """Per-sample draw weight: the mean over its labelled (balanced) tasks of (size of its class) ** -power,
    scaled to mean 1 over the samples labelled for that task; 1 for a sample with none of those labels, so
    balancing one dataset's task leaves the other datasets' share of the draws as it was."""
    total = torch.zeros(len(labels))
    count = torch.zeros(len(labels))
    for j in range(labels.shape[1]) if columns is None else columns:
        column = labels[:, j]
        has = column >= 0
        if has.any():
            freq = torch.bincount(column[has]).float()
            per_sample = freq[column[has]] ** -power
            total[has] += per_sample / per_sample.mean()
            count[has] += 1
    return torch.where(count > 0, total / count.clamp(min=1), torch.ones_like(total))


# --- runtime: one process, or Accelerate ---------------------------------------------------------

class LocalRuntime:
    """One process, plain PyTorch: the simple, deterministic path."""

    is_main = True
    num_processes = 1

    def __init__(self, device: torch.device, bf16: bool):
        self.device, self.bf16 = device, bf16
        self.dtype = torch.bfloat16 if bf16 else torch.float32  # what features are computed in

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    def prepare(self, module: nn.Module, optimizer, loader):
        return module, optimizer, loader

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip(self, params, max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)

    def main_process_first(self):
        return contextlib.nullcontext()

    def wait(self) -> None:
        pass


class AccelerateRuntime(LocalRuntime):
    """Data-parallel over the processes ``accelerate launch`` started (or one, on a GPU)."""

    def __init__(self, bf16: bool, cpu: bool):
        from accelerate import Accelerator

        self.accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=cpu)
        super().__init__(self.accelerator.device, False)  # Accelerate applies the autocast itself
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self.is_main = self.accelerator.is_main_process
        self.num_processes = self.accelerator.num_processes

    def autocast(self):
        return contextlib.nullcontext()

    def prepare(self, module, optimizer, loader):
        return self.accelerator.prepare(module, optimizer, loader)

    def backward(self, loss):
        self.accelerator.backward(loss)

    def clip(self, params, max_norm):
        self.accelerator.clip_grad_norm_(params, max_norm)

    def main_process_first(self):
        return self.accelerator.main_process_first()

    def wait(self):
        self.accelerator.wait_for_everyone()


def make_runtime(cfg: TrainConfig) -> LocalRuntime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(cfg.device)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    use_accelerate = cfg.accelerate if cfg.accelerate is not None else (world > 1 or device.type == "cuda")
    if use_accelerate:
        return AccelerateRuntime(bf16, cpu=device.type == "cpu")
    return LocalRuntime(device, bf16)


class TrainStep(nn.Module):
    """The model's forward as one module, so data-parallel wrappers see every trained parameter.

    With an ``anchor`` (the zero-shot model on the same frozen backbone) it also returns the anchor's
    logits, computed without a graph; otherwise None.
    """

    def __init__(self, model: PromptModel, on_features: bool, anchor: PromptModel | None = None):
        super().__init__()
        self.model, self.on_features, self.anchor = model, on_features, anchor

    def forward(self, inputs: torch.Tensor):
        out = self.model.forward_features(inputs) if self.on_features else self.model(inputs)
        anchor_logits = None
        if self.anchor is not None:
            with torch.no_grad():
                anchor_out = self.anchor.forward_features(inputs) if self.on_features else self.anchor(inputs)
            anchor_logits = anchor_out.logits
        return out.logits, out.aux, anchor_logits


def anchor_model(cfg: TrainConfig, model: PromptModel) -> PromptModel | None:
    """The zero-shot model sharing ``model``'s backbone, when ``anchor_weight`` asks for one."""
    if not cfg.anchor_weight:
        return None
    return build_model("zero-shot", model.backbone, model.tasks)


# --- optimisation --------------------------------------------------------------------------------

def make_optimizer(cfg: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_at(step: int, total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> float:
    """Linear warm-up to ``lr``, then cosine from ``lr`` to ``min_lr`` at the last step."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    total, warmup = cfg.epochs * steps_per_epoch, int(round(cfg.warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, total, warmup, cfg.lr, cfg.min_lr) / cfg.lr)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


# --- checkpoints ---------------------------------------------------------------------------------

@dataclass
class TrainerState:
    """Counters that survive a restart."""

    epoch: int = 0  # epochs finished
    best_metric: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list = field(default_factory=list)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_pos": random.getstate()[2]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, model: PromptModel, optimizer, scheduler, state: TrainerState) -> None:
    """One atomic file for everything a resume needs, plus a readable summary."""
    payload = {
        "trainable": {n: p.detach().cpu().clone() for n, p in model.named_trainable_parameters().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        "state": dataclasses.asdict(state),
    }
    with atomic_path(run_dir / CHECKPOINT_FILE) as tmp:
        torch.save(payload, tmp)
    info = {k: v for k, v in dataclasses.asdict(state).items() if k != "history"}
    write_json_atomic(run_dir / CHECKPOINT_INFO, info)


def load_checkpoint(run_dir: Path, model: PromptModel, optimizer, scheduler) -> TrainerState:
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"resume: {path} does not exist (nothing to resume)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    params = model.named_trainable_parameters()
    if set(params) != set(payload["trainable"]):
        raise ValueError(f"resume: {path} holds tensors {sorted(payload['trainable'])}, "
                         f"the method trains {sorted(params)}")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(payload["trainable"][name])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    _set_rng_state(payload["rng"])
    return TrainerState(**payload["state"])


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    write_json_atomic(run_dir / "metrics.json", history)
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    with atomic_path(run_dir / "metrics.csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(history)


# --- the loop ------------------------------------------------------------------------------------

@dataclass
class FitResult:
    run_dir: Path
    history: list[dict]
    best_epoch: int
    best_metric: float
    stopped: str  # "completed" or "early_stopping"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _to_device(batch, device):
    inputs, targets = batch
    return inputs.to(device, non_blocking=True), {t: y.to(device, non_blocking=True) for t, y in targets.items()}


def _datasets(cfg: TrainConfig, model: PromptModel, runtime: LocalRuntime, train_frame, val_frame, progress: bool):
    """(train, val, on_features): image datasets, or cached feature datasets for frozen image paths."""
    backbone = model.backbone
    train = ManifestDataset(train_frame, backbone.preprocess, cfg.tasks)
    val = ManifestDataset(val_frame, backbone.preprocess, cfg.tasks) if len(val_frame) else None
    if not model.caches_image_features:
        return train, val, False
    out = []
    for ds in (train, val):
        if ds is None:
            out.append(None)
            continue
        with runtime.main_process_first():
            feats = cached_features(backbone, ds, cfg.cache_dir, cfg.batch_size, cfg.num_workers, runtime.dtype,
                                    progress and runtime.is_main)
        out.append(FeatureDataset(feats, ds.labels, ds.tasks))
    return out[0], out[1], True


def _balanced_tasks(cfg: TrainConfig) -> list[int]:
    """Column indices of the tasks class balance applies to."""
    chosen = cfg.tasks if cfg.class_balance_tasks is None else cfg.class_balance_tasks
    return [j for j, t in enumerate(cfg.tasks) if t in chosen]


def _class_weights(cfg: TrainConfig, labels: torch.Tensor, device) -> dict[str, torch.Tensor] | None:
    if cfg.class_balance != "weights":
        return None
    return {cfg.tasks[j]: inverse_frequency_weights(labels[:, j], TASKS[cfg.tasks[j]].num_classes,
                                                    cfg.class_balance_power).to(device)
            for j in _balanced_tasks(cfg)}


def rescale_logits(logits: dict[str, torch.Tensor], factor: float) -> dict[str, torch.Tensor]:
    return logits if factor == 1.0 else {task: value * factor for task, value in logits.items()}


def loss_logit_factor(cfg: TrainConfig, model: PromptModel) -> float:
    """What the logits are multiplied by inside the loss (1 unless ``loss_logit_scale`` is set)."""
    if cfg.loss_logit_scale is None:
        return 1.0
    return float(cfg.loss_logit_scale) / float(model.backbone.logit_scale)


def train_epoch(step_module, loader, optimizer, scheduler, runtime, cfg, class_weights, epoch: int,
                progress: bool, logit_factor: float = 1.0) -> dict[str, float]:
    """One pass over the training loader; mean loss terms weighted by batch size."""
    step_module.train()
    params = [p for p in step_module.parameters() if p.requires_grad]
    sums: dict[str, float] = {}
    seen = 0
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress)
    for step, batch in enumerate(bar):
        inputs, targets = _to_device(batch, runtime.device)
        with runtime.autocast():
            logits, aux, anchor_logits = step_module(inputs)
        logits = rescale_logits(logits, logit_factor)
        if anchor_logits is not None:
            aux = {**aux, "anchor": cfg.anchor_weight * anchor_divergence(
                logits, rescale_logits(anchor_logits, logit_factor))}
        parts = multitask_loss(logits, targets, cfg.task_weights, class_weights, cfg.age_ordinal_weight, aux)
        if not torch.isfinite(parts.total):
            terms = {k: round(float(v.detach()), 4) for k, v in parts.terms.items()}
            raise NonFiniteLossError(f"loss is {float(parts.total.detach())} at epoch {epoch}, step {step} (terms {terms})")
        optimizer.zero_grad(set_to_none=True)
        runtime.backward(parts.total)
        if cfg.grad_clip:
            runtime.clip(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        n = len(inputs)
        seen += n
        for key, value in {"loss": parts.total, **parts.terms}.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach()) * n
        bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
    return {f"train_{k}": v / max(seen, 1) for k, v in sums.items()}


@torch.no_grad()
def validate(model: PromptModel, loader, runtime, cfg: TrainConfig, on_features: bool,
             logit_factor: float = 1.0) -> dict[str, float]:
    """Validation loss and per-task accuracy over labelled samples; their mean is the monitored metric."""
    model.eval()
    truth: dict[str, list[torch.Tensor]] = {t: [] for t in cfg.tasks}
    predicted: dict[str, list[torch.Tensor]] = {t: [] for t in cfg.tasks}
    loss_sum, seen = 0.0, 0
    for batch in loader:
        inputs, targets = _to_device(batch, runtime.device)
        with runtime.autocast():
            out = model.forward_features(inputs) if on_features else model(inputs)
        parts = multitask_loss(rescale_logits(out.logits, logit_factor), targets, cfg.task_weights, None,
                               cfg.age_ordinal_weight)
        loss_sum += float(parts.total) * len(inputs)
        seen += len(inputs)
        for task, logits in out.logits.items():
            mask = targets[task] >= 0
            truth[task].append(targets[task][mask].cpu())
            predicted[task].append(logits.argmax(-1)[mask].cpu())
    record = {"val_loss": loss_sum / max(seen, 1)}
    accuracies, balanced = [], []
    for task in cfg.tasks:
        y_true = torch.cat(truth[task]).numpy() if truth[task] else []
        if len(y_true):
            y_pred = torch.cat(predicted[task]).numpy()
            record[f"val_accuracy_{task}"] = metrics.accuracy(y_true, y_pred)
            record[f"val_balanced_accuracy_{task}"] = metrics.balanced_accuracy(y_true, y_pred, TASKS[task].num_classes)
            accuracies.append(record[f"val_accuracy_{task}"])
            balanced.append(record[f"val_balanced_accuracy_{task}"])
    record["val_mean_accuracy"] = sum(accuracies) / len(accuracies) if accuracies else float("nan")
    record["val_mean_balanced_accuracy"] = sum(balanced) / len(balanced) if balanced else float("nan")
    return record


def _prepare_run_dir(cfg: TrainConfig, resume: bool) -> Path:
    run_dir = cfg.run_path()
    has_checkpoint = (run_dir / CHECKPOINT_FILE).is_file()
    if resume and not has_checkpoint:
        raise FileNotFoundError(f"run_id: {run_dir} has no {CHECKPOINT_FILE} to resume from")
    if not resume and has_checkpoint:
        raise ValueError(f"run_id: {run_dir} already holds a run; resume it (--resume) or choose another run_id")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def fit(config: TrainConfig | dict | str | os.PathLike, *, resume: bool = False, progress: bool = True,
        on_epoch_end: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train ``config.method`` and write the run folder; returns the per-epoch history.

    ``resume=True`` continues the run in ``run_dir/run_id`` from its last checkpoint.
    ``on_epoch_end(epoch, record)`` is called after each epoch's checkpoint is written.
    Every config error is raised before data is read, weights are loaded or folders are made.
    """
    cfg = config if isinstance(config, TrainConfig) else (
        TrainConfig.from_dict(config) if isinstance(config, dict) else load_config(config))
    cfg.validate()
    cfg = absolute_paths(cfg)
    if cfg.run_id is None:
        if resume:
            raise ValueError("run_id: resuming needs the run_id of the run to continue")
        cfg = dataclasses.replace(cfg, run_id=cfg.run_path().name)
    train_frame, val_frame = load_frames(cfg)
    run_dir = _prepare_run_dir(cfg, resume)
    runtime = make_runtime(cfg)
    _seed_everything(cfg.seed)

    backbone = load_backbone(cfg.backbone, cfg.weights, device=runtime.device)
    model = build_model(cfg.method, backbone, cfg.tasks, cfg.method_options)
    if not model.trainable_parameters():
        raise ValueError(f"method: {cfg.method!r} trains nothing; evaluate it with `faceprompt evaluate --zero-shot`")
    train_ds, val_ds, on_features = _datasets(cfg, model, runtime, train_frame, val_frame, progress)
    weights = balanced_sample_weights(train_ds.labels, _balanced_tasks(cfg), cfg.class_balance_power) \
        if cfg.class_balance == "sampler" else None
    sampler = EpochSampler(len(train_ds), cfg.seed, weights)
    workers = 0 if on_features else cfg.num_workers
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                              pin_memory=runtime.device.type == "cuda")
    val_loader = None if val_ds is None else DataLoader(val_ds, batch_size=cfg.batch_size, num_workers=workers)
    optimizer = make_optimizer(cfg, model.trainable_parameters())
    step_module, optimizer, train_loader = runtime.prepare(
        TrainStep(model, on_features, anchor_model(cfg, model)), optimizer, train_loader)
    scheduler = make_scheduler(cfg, optimizer, len(train_loader))
    class_weights = _class_weights(cfg, train_ds.labels, runtime.device)
    logit_factor = loss_logit_factor(cfg, model)

    state = load_checkpoint(run_dir, model, optimizer, scheduler) if resume else TrainerState()
    extra = {"train_config": cfg.to_dict()}
    if progress and runtime.is_main and not resume:
        model.print_trainable_parameters()
    stopped = "completed"
    epochs = tqdm(range(state.epoch + 1, cfg.epochs + 1), desc="epochs", initial=state.epoch, total=cfg.epochs,
                  disable=not progress or not runtime.is_main)
    for epoch in epochs:
        started = time.perf_counter()
        sampler.set_epoch(epoch)
        try:
            record = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
            record.update(train_epoch(step_module, train_loader, optimizer, scheduler, runtime, cfg, class_weights,
                                      epoch, progress and runtime.is_main, logit_factor))
        except NonFiniteLossError as err:
            kept = f"the last good checkpoint ({run_dir / CHECKPOINT_FILE}, epoch {state.epoch})" if state.epoch \
                else "no checkpoint was written yet"
            raise NonFiniteLossError(f"training stopped: {err}; {kept} is kept. Lower lr or set grad_clip, "
                                     f"then resume with --resume") from None
        if val_loader is not None:
            record.update(validate(model, val_loader, runtime, cfg, on_features, logit_factor))
        metric = record.get(MONITORS[cfg.monitor], -record["train_loss"])
        improved = state.best_epoch == 0 or metric > state.best_metric
        if improved:
            state.best_metric, state.best_epoch, state.bad_epochs = metric, epoch, 0
        else:
            state.bad_epochs += 1
        record["seconds"] = round(time.perf_counter() - started, 3)
        state.epoch = epoch
        state.history.append(record)
        if runtime.is_main:
            if improved:
                save_prompts(model, run_dir, {**extra, "best_epoch": epoch, "best_metric": metric})
            write_metrics(run_dir, state.history)
            save_checkpoint(run_dir, model, optimizer, scheduler, state)
        runtime.wait()
        epochs.set_postfix(loss=f"{record['train_loss']:.4f}", val=f"{metric:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if cfg.patience is not None and val_loader is not None and state.bad_epochs >= cfg.patience:
            stopped = "early_stopping"
            break
    if runtime.is_main:
        summary = read_json(run_dir / "config.json")
        summary.update({"stopped": stopped, "epochs_run": state.epoch})
        write_json_atomic(run_dir / "config.json", summary)
    return FitResult(run_dir, state.history, state.best_epoch, state.best_metric, stopped)


def resume_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig stored in a run folder (for ``--resume RUN_DIR``)."""
    config = read_json(Path(run_dir) / "config.json")
    if "train_config" not in config:
        raise ValueError(f"{run_dir}/config.json: no 'train_config' (not a training run)")
    return TrainConfig.from_dict(config["train_config"], where=f"{run_dir}/config.json")
