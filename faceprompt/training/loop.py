"""Training: a prompt method, manifests and a :class:`~faceprompt.training.config.TrainConfig` in; a run folder out.

``fit(config)`` writes ``<run_dir>/<run_id>/``:

======================= ==================================================================
config.json             the method (from ``save_prompts``) plus ``train_config``, best epoch
prompts.safetensors     the trained tensors of the best validation epoch
metrics.csv / .json     one row per epoch: lr, train loss terms, val loss and accuracies
checkpoint.safetensors  last finished epoch: trainable tensors, optimizer, scheduler, every RNG
                        state, early-stopping state and the config (``engine.state``; no pickle)
checkpoint.json         the same epoch's counters, readable
======================= ==================================================================

Determinism: the shuffling of epoch ``e`` comes from a generator seeded by ``(seed, e)``, and the
global RNG states (used by dropout and V2PT's sampling) are saved with every checkpoint, so a run
interrupted after any epoch and resumed ends, on CPU, with exactly the metrics of an
uninterrupted one. A resume keeps the recipe: only the fields in ``config.RESUMABLE_CHANGES`` may differ.
Methods whose image path is frozen train on cached image features.
One process is the default; ``accelerate launch -m faceprompt train ...`` runs data-parallel
through Hugging Face Accelerate with no change to the config.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from faceprompt import metrics
from faceprompt.backbones import load_backbone
from faceprompt.checkpoint import save_prompts
from faceprompt.data.dataset import FeatureDataset, ManifestDataset
from faceprompt.engine import state as engine_state
from faceprompt.engine.optim import make_optimizer, optimizer_step, part_groups
from faceprompt.engine.progress import bar, interruptible
from faceprompt.engine.run_folder import CHECKPOINT_INFO, RunFolderLock, check_run_folder
from faceprompt.engine.runtime import LocalRuntime, make_runtime
from faceprompt.engine.schedule import warmup_cosine
from faceprompt.engine.seeding import EpochSampler, seed_everything
from faceprompt.engine.selection import judge_epoch
from faceprompt.features import cached_features
from faceprompt.io import atomic_path, read_json, write_json_atomic
from faceprompt.prompts import PromptModel, build_model
from faceprompt.tasks import TASKS
from faceprompt.training.balance import (age_gender_sample_weights, balanced_features, balanced_images,
                                         balanced_sample_weights, duplicates_of)
from faceprompt.training.config import (MONITORS, RESUMABLE_CHANGES, TrainConfig, absolute_paths,  # noqa: F401
                                        load_config, resume_config)
from faceprompt.training.data import load_frames  # noqa: F401  (part of this module's API)
from faceprompt.training.losses import (LossParts, anchor_divergence, inverse_frequency_weights, multitask_loss,
                                        ordinal_penalty)
from faceprompt.training.task_weights import LossEMATaskWeights, data_task_weights
from faceprompt.training.warm_start import load_text_part

log = logging.getLogger(__name__)

CHECKPOINT_FILE = engine_state.CHECKPOINT_FILE


# --- data ----------------------------------------------------------------------------------------

# --- the model step --------------------------------------------------------------------------------

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


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


# --- checkpoints and records -----------------------------------------------------------------------

@dataclass
class TrainerState:
    """Counters that survive a restart."""

    epoch: int = 0  # epochs finished
    best_metric: float = -float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list = field(default_factory=list)
    best_loss: float = float("inf")  # tracked under best_rule loss_or_accuracy
    task_loss_ema: dict = field(default_factory=dict)  # task_weighting loss_ema: each task's running loss


def _resume_advice(run_dir: Path) -> str:
    return f"this run cannot be resumed: delete {run_dir} and train it again (or restore the file from a copy)"


def save_checkpoint(run_dir: Path, model: PromptModel, optimizer, scheduler, state: TrainerState,
                    cfg: TrainConfig) -> None:
    """One atomic file for everything a resume needs, plus a readable summary."""
    info = dataclasses.asdict(state)
    engine_state.save_checkpoint(run_dir / CHECKPOINT_FILE, model.named_trainable_parameters(), optimizer,
                                 scheduler, {"state": info, "config": cfg.to_dict()})
    write_json_atomic(run_dir / CHECKPOINT_INFO, {k: v for k, v in info.items() if k != "history"})


def check_resume(run_dir: Path, cfg: TrainConfig) -> None:
    """Refuse, before any work, a resume whose checkpoint is unreadable or whose recipe differs."""
    info = engine_state.stored_info(run_dir / CHECKPOINT_FILE, _resume_advice(run_dir))
    engine_state.check_same_recipe(info.get("config", {}), cfg.to_dict(), RESUMABLE_CHANGES, f"resume {run_dir}")


def load_checkpoint(run_dir: Path, model: PromptModel, optimizer, scheduler) -> TrainerState:
    path = run_dir / CHECKPOINT_FILE
    saved = engine_state.load_checkpoint(path, optimizer, scheduler, _resume_advice(run_dir))
    params = model.named_trainable_parameters()
    if set(params) != set(saved.model):
        raise engine_state.CheckpointError(f"resume: {path} holds tensors {sorted(saved.model)}, "
                                           f"the method trains {sorted(params)}")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(saved.model[name])
    rate_for_this_schedule(scheduler)
    return TrainerState(**saved.info["state"])


def rate_for_this_schedule(scheduler) -> None:
    """After a resume the optimizer holds the rate the stored schedule reached; a resume may lengthen the run
    (``--set epochs=N``), so the rate is recomputed on this run's schedule at the step reached."""
    for group, base, rate in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * rate(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


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
    selected_by: str = "val_mean_accuracy"  # what chose best_epoch: a validation mean, or the training loss


def _to_device(batch, device):
    inputs, targets = batch
    return inputs.to(device, non_blocking=True), {t: y.to(device, non_blocking=True) for t, y in targets.items()}


def _datasets(cfg: TrainConfig, model: PromptModel, runtime: LocalRuntime, train_frame, val_frame, progress: bool):
    """(train, val, on_features): image datasets, or cached feature datasets for frozen image paths;
    the training set with ``task_balance``'s duplicates after its own rows."""
    backbone = model.backbone
    train = ManifestDataset(train_frame, backbone.preprocess, cfg.tasks)
    val = ManifestDataset(val_frame, backbone.preprocess, cfg.tasks) if len(val_frame) else None
    duplicates = duplicates_of(cfg, train)
    if not model.caches_image_features:
        return balanced_images(cfg, train, duplicates, backbone.image_size), val, False
    out = []
    for ds in (train, val):
        if ds is None:
            out.append(None)
            continue
        with runtime.main_process_first():
            feats = cached_features(backbone, ds, cfg.cache_dir, cfg.batch_size, cfg.num_workers, runtime.dtype,
                                    progress and runtime.is_main)
            if ds is train:
                out.append(balanced_features(cfg, ds, feats, duplicates, backbone, runtime.dtype,
                                             progress and runtime.is_main))
                continue
        out.append(FeatureDataset(feats, ds.labels, ds.tasks))
    return out[0], out[1], True


def _balanced_tasks(cfg: TrainConfig) -> list[int]:
    """Column indices of the tasks class balance applies to."""
    chosen = cfg.tasks if cfg.class_balance_tasks is None else cfg.class_balance_tasks
    return [j for j, t in enumerate(cfg.tasks) if t in chosen]


def _balance_power(cfg: TrainConfig, task: str) -> float:
    return float(cfg.class_balance_task_powers.get(task, cfg.class_balance_power))


def _class_weights(cfg: TrainConfig, labels: torch.Tensor, device) -> dict[str, torch.Tensor] | None:
    if cfg.class_balance != "weights":
        return None
    return {cfg.tasks[j]: inverse_frequency_weights(labels[:, j], TASKS[cfg.tasks[j]].num_classes,
                                                    _balance_power(cfg, cfg.tasks[j])).to(device)
            for j in _balanced_tasks(cfg)}


def training_loss(cfg: TrainConfig, logits, targets, task_weights: dict | None = None, class_weights=None,
                  aux=None) -> LossParts:
    """The configured multitask loss (age penalty, its weight) with the epoch's ``task_weights``."""
    penalty = ordinal_penalty(cfg.age_ordinal, cfg.age_ordinal_omega, cfg.age_ordinal_mu)
    weights = cfg.task_weights if task_weights is None else task_weights
    return multitask_loss(logits, targets, weights, class_weights, cfg.age_ordinal_weight, aux, penalty,
                          cfg.age_ordinal)


def rescale_logits(logits: dict[str, torch.Tensor], factor: float) -> dict[str, torch.Tensor]:
    return logits if factor == 1.0 else {task: value * factor for task, value in logits.items()}


def loss_logit_factor(cfg: TrainConfig, model: PromptModel) -> float:
    """What the logits are multiplied by inside the loss (1 unless ``loss_logit_scale`` is set)."""
    if cfg.loss_logit_scale is None:
        return 1.0
    return float(cfg.loss_logit_scale) / float(model.backbone.logit_scale)


def train_epoch(step_module, loader, optimizer, scheduler, runtime, cfg, class_weights, epoch: int,
                progress: bool, logit_factor: float = 1.0, task_weights: dict | None = None,
                loss_ema: LossEMATaskWeights | None = None) -> dict[str, float]:
    """One pass over the training loader; mean loss terms weighted by batch size.

    ``task_weights`` replace the config's for this epoch; ``loss_ema`` is fed every step's task losses."""
    step_module.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]  # what steps (and is clipped)
    sums: dict[str, float] = {}
    seen = 0
    steps = bar(loader, f"epoch {epoch}", progress, leave=False)
    for step, batch in enumerate(steps):
        inputs, targets = _to_device(batch, runtime.device)
        with runtime.autocast():
            logits, aux, anchor_logits = step_module(inputs)
        logits = rescale_logits(logits, logit_factor)
        if anchor_logits is not None:
            aux = {**aux, "anchor": cfg.anchor_weight * anchor_divergence(
                logits, rescale_logits(anchor_logits, logit_factor))}
        parts = training_loss(cfg, logits, targets, task_weights, class_weights, aux)
        if not torch.isfinite(parts.total):
            terms = {k: round(float(v.detach()), 4) for k, v in parts.terms.items()}
            raise NonFiniteLossError(f"loss is {float(parts.total.detach())} at epoch {epoch}, step {step} (terms {terms})")
        optimizer_step(parts.total, optimizer, scheduler, runtime, params, cfg.grad_clip)
        if loss_ema is not None:
            loss_ema.update({task: float(value.detach()) for task, value in parts.per_task.items()})
        n = len(inputs)
        seen += n
        for key, value in {"loss": parts.total, **parts.terms}.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach()) * n
        steps.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
    return {f"train_{k}": v / max(seen, 1) for k, v in sums.items()}


@torch.no_grad()
def validate(model: PromptModel, loader, runtime, cfg: TrainConfig, on_features: bool,
             logit_factor: float = 1.0, task_weights: dict | None = None) -> dict[str, float]:
    """Validation loss and per-task accuracy over labelled samples; their mean is the monitored metric."""
    model.eval()
    truth: dict[str, list[torch.Tensor]] = {t: [] for t in cfg.tasks}
    predicted: dict[str, list[torch.Tensor]] = {t: [] for t in cfg.tasks}
    loss_sum, task_loss_sum, seen = 0.0, 0.0, 0
    for batch in loader:
        inputs, targets = _to_device(batch, runtime.device)
        with runtime.autocast():
            out = model.forward_features(inputs) if on_features else model(inputs)
        parts = training_loss(cfg, rescale_logits(out.logits, logit_factor), targets, task_weights)
        loss_sum += float(parts.total) * len(inputs)
        task_loss_sum += float(sum(parts.per_task.values())) * len(inputs)
        seen += len(inputs)
        for task, logits in out.logits.items():
            mask = targets[task] >= 0
            truth[task].append(targets[task][mask].cpu())
            predicted[task].append(logits.argmax(-1)[mask].cpu())
    # val_task_loss: the tasks' unweighted losses added, the loss the thesis's script keeps an epoch on
    record = {"val_loss": loss_sum / max(seen, 1), "val_task_loss": task_loss_sum / max(seen, 1)}
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
    check_run_folder(run_dir, resume)
    if resume:
        check_resume(run_dir, cfg)
    return run_dir


@dataclass
class _Session:
    """A run ready to train: the model, its step module, loaders, optimizer, schedule and loss settings."""

    cfg: TrainConfig
    run_dir: Path
    runtime: LocalRuntime
    model: PromptModel
    step_module: nn.Module
    sampler: EpochSampler
    train_loader: DataLoader
    val_loader: DataLoader | None
    on_features: bool
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    class_weights: dict | None
    logit_factor: float
    loss_ema: LossEMATaskWeights | None  # task_weighting loss_ema


def _start(cfg: TrainConfig, run_dir: Path, train_frame, val_frame, progress: bool) -> _Session:
    runtime = make_runtime(cfg.device, cfg.precision, cfg.accelerate)
    seed_everything(cfg.seed)
    backbone = load_backbone(cfg.backbone, cfg.weights, device=runtime.device)
    if cfg.compile:
        backbone.compile_image_path()
    model = build_model(cfg.method, backbone, cfg.tasks, cfg.method_options)
    if not model.trainable_parameters():
        raise ValueError(f"method: {cfg.method!r} trains nothing; evaluate it with `faceprompt evaluate --zero-shot`")
    if cfg.init_from is not None:
        load_text_part(model, cfg.init_from)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_ds, val_ds, on_features = _datasets(cfg, model, runtime, train_frame, val_frame, progress)
    columns = _balanced_tasks(cfg)
    weights = balanced_sample_weights(train_ds.labels, columns, [_balance_power(cfg, cfg.tasks[j]) for j in columns]) \
        if cfg.class_balance == "sampler" else None
    if cfg.age_gender_balance:
        joint = age_gender_sample_weights(train_ds.labels, cfg.tasks.index("gender"), cfg.tasks.index("age"),
                                          cfg.age_gender_balance)
        weights = joint if weights is None else weights * joint
    sampler = EpochSampler(len(train_ds), cfg.seed, weights, getattr(train_ds, "set_epoch", None))
    workers = 0 if on_features else cfg.num_workers
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                              pin_memory=runtime.device.type == "cuda")
    val_loader = None if val_ds is None else DataLoader(val_ds, batch_size=cfg.batch_size, num_workers=workers)
    optimizer = make_optimizer(cfg.optimizer, part_groups(model, cfg.lr, cfg.text_lr_scale), cfg.lr,
                               cfg.weight_decay, cfg.momentum)
    step_module, optimizer, train_loader = runtime.prepare(
        TrainStep(model, on_features, anchor_model(cfg, model)), optimizer, train_loader)
    steps_per_epoch = len(train_loader)
    if cfg.lr_schedule_unit == "epoch":  # the curve counts epochs: one rate per epoch
        scheduler = warmup_cosine(optimizer, cfg.epochs, int(round(cfg.warmup_epochs)), cfg.lr, cfg.min_lr,
                                  steps_per_epoch=steps_per_epoch)
    else:
        scheduler = warmup_cosine(optimizer, cfg.epochs * steps_per_epoch,
                                  int(round(cfg.warmup_epochs * steps_per_epoch)), cfg.lr, cfg.min_lr)
    return _Session(cfg, run_dir, runtime, model, step_module, sampler, train_loader, val_loader, on_features,
                    optimizer, scheduler, _class_weights(cfg, train_ds.labels, runtime.device),
                    loss_logit_factor(cfg, model), _loss_ema(cfg, train_ds.labels))


def _loss_ema(cfg: TrainConfig, labels: torch.Tensor) -> LossEMATaskWeights | None:
    if cfg.task_weighting == "fixed":
        return None
    form = "inverse" if cfg.task_weighting == "loss_ema" else "data_over_loss"
    return LossEMATaskWeights(data_task_weights(labels, cfg.tasks), cfg.task_weight_ema, form)


def _run_epoch(s: _Session, state: TrainerState, epoch: int, progress: bool) -> dict:
    """Train and validate one epoch, update the early-stopping state, write the run folder."""
    cfg, run_dir = s.cfg, s.run_dir
    started = time.perf_counter()
    s.sampler.set_epoch(epoch)
    record = {"epoch": epoch, "lr": s.optimizer.param_groups[0]["lr"]}
    task_weights = None if s.loss_ema is None else s.loss_ema.weights()
    record.update({f"task_weight_{task}": w for task, w in (task_weights or {}).items()})
    try:
        record.update(train_epoch(s.step_module, s.train_loader, s.optimizer, s.scheduler, s.runtime, cfg,
                                  s.class_weights, epoch, progress and s.runtime.is_main, s.logit_factor,
                                  task_weights, s.loss_ema))
    except NonFiniteLossError as err:
        kept = f"the last good checkpoint ({run_dir / CHECKPOINT_FILE}, epoch {state.epoch})" if state.epoch \
            else "no checkpoint was written yet"
        raise NonFiniteLossError(f"training stopped: {err}; {kept} is kept. Lower lr or set grad_clip, "
                                 f"then resume with --resume") from None
    if s.val_loader is not None:
        record.update(validate(s.model, s.val_loader, s.runtime, cfg, s.on_features, s.logit_factor, task_weights))
    # Without validation rows the epoch is kept on the training loss (its negative, so higher is better).
    metric = record.get(MONITORS[cfg.monitor], -record["train_loss"])
    loss = record.get("val_task_loss", record.get("val_loss", record["train_loss"]))
    improved = judge_epoch(state, epoch, metric, loss, cfg.best_rule)
    if s.loss_ema is not None:
        state.task_loss_ema = s.loss_ema.state()
    record["seconds"] = round(time.perf_counter() - started, 3)
    state.epoch = epoch
    state.history.append(record)
    if s.runtime.is_main:
        if improved:
            save_prompts(s.model, run_dir, {"train_config": cfg.to_dict(), "best_epoch": epoch, "best_metric": metric,
                                            "selected_by": selected_by(s)})
        write_metrics(run_dir, state.history)
        save_checkpoint(run_dir, s.model, s.optimizer, s.scheduler, state, cfg)
    s.runtime.wait()
    return record


def selected_by(s: _Session) -> str:
    return MONITORS[s.cfg.monitor] if s.val_loader is not None else "train_loss"


def _resolve(config: TrainConfig | dict | str | os.PathLike, resume: bool) -> TrainConfig:
    cfg = config if isinstance(config, TrainConfig) else (
        TrainConfig.from_dict(config) if isinstance(config, dict) else load_config(config))
    cfg.validate()
    cfg = absolute_paths(cfg)
    if cfg.run_id is None:
        if resume:
            raise ValueError("run_id: resuming needs the run_id of the run to continue")
        cfg = dataclasses.replace(cfg, run_id=cfg.run_path().name)
    return cfg


def fit(config: TrainConfig | dict | str | os.PathLike, *, resume: bool = False, progress: bool = True,
        on_epoch_end: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train ``config.method`` and write the run folder; returns the per-epoch history.

    ``resume=True`` continues the run in ``run_dir/run_id`` from its last checkpoint, writing only there,
    and refuses a config whose recipe differs from the checkpoint's. ``on_epoch_end(epoch, record)`` is
    called after each epoch's checkpoint is written. Every config error is raised before data is read,
    weights are loaded or folders are made. Ctrl-C or SIGTERM ends with ``errors.Interrupted``, the last
    epoch's checkpoint kept.
    """
    cfg = _resolve(config, resume)
    _prepare_run_dir(cfg, resume)  # refused before the lock makes the folder
    with RunFolderLock(cfg.run_path()):
        return _fit_locked(cfg, resume, progress, on_epoch_end)


def _fit_locked(cfg: TrainConfig, resume: bool, progress: bool, on_epoch_end) -> FitResult:
    run_dir = _prepare_run_dir(cfg, resume)  # again: another writer may have finished in between
    train_frame, val_frame = load_frames(cfg)
    session = _start(cfg, run_dir, train_frame, val_frame, progress)
    state = load_checkpoint(run_dir, session.model, session.optimizer, session.scheduler) if resume \
        else TrainerState()
    if session.loss_ema is not None:
        session.loss_ema.load(state.task_loss_ema)
    if progress and session.runtime.is_main and not resume:
        session.model.print_trainable_parameters()
    stopped = "completed"
    epochs = bar(range(state.epoch + 1, cfg.epochs + 1), "epochs", progress and session.runtime.is_main,
                 initial=state.epoch, total=cfg.epochs)
    with interruptible("training", f"faceprompt train --resume {run_dir}") as done:
        done["done"] = state.epoch
        for epoch in epochs:
            record = _run_epoch(session, state, epoch, progress)
            done["done"] = epoch
            epochs.set_postfix(loss=f"{record['train_loss']:.4f}",
                               val=f"{record.get(MONITORS[cfg.monitor], float('nan')):.4f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            if cfg.patience is not None and session.val_loader is not None and state.bad_epochs >= cfg.patience:
                stopped = "early_stopping"
                break
    if session.runtime.is_main:
        summary = read_json(run_dir / "config.json")
        # A resume may have lengthened the run: the config records the schedule that ran.
        summary.update({"stopped": stopped, "epochs_run": state.epoch,
                        "train_config": {**summary.get("train_config", {}), "epochs": cfg.epochs}})
        write_json_atomic(run_dir / "config.json", summary)
    return FitResult(run_dir, state.history, state.best_epoch, state.best_metric, stopped, selected_by(session))
