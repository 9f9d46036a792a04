"""`faceprompt pretrain --config FILE`: contrastive image-text pretraining of a small face model.

This is how the embedded ``faceclip-tiny`` backbone is made. Offline there are no SigLIP2 or PE-Core
weights, so the project trains a small model of the same kind itself: an open_clip ``CustomTextCLIP``
whose vision tower is a timm Eva (cls token, 2-D RoPE, MAP head: PE-Core's layout, so every prompt
method's hooks apply) and whose text tower is open_clip's causal transformer with the SimpleTokenizer.

Recipe, in order (each step's code is in ``faceprompt.pretraining``):

1. **Rows and splits** (``data``). The dataset adapters (``faceprompt.data.adapters``) read UTKFace, facial_expressions
   and (in the in-the-wild recipe) FER+ in their published layouts (gender for facial_expressions from the
   LFW lists); splits are assigned exactly as ``faceprompt prepare`` assigns them (same keys, seed and
   fractions; FER+ keeps its official Train/Valid/Test), so ``prepare``'s held-out test set is this model's
   held-out test set. Only ``train`` rows are trained on; the split of every row is
   written next to the weights (``splits.csv.gz``).
2. **Image cache** (``cache``). Every image is decoded and resized once into one uint8 safetensors file
   (``work_dir``), so an epoch reads memory, not JPEGs. Every image is read through
   ``cache.load_face`` (one function, so a different face crop changes every image at once). Each step
   augments the batch on the cache's uint8 pixels (``augment``: crop, shift, rotation, flip, colour, white
   balance, grayscale, blur, JPEG), every draw from the epoch's seeded generator.
3. **Captions from labels** (``captions``). Each step writes a fresh caption per image from a random subset
   of its labels and a random template ("a photo of a 34 year old woman.", "a face of a happy man.", "a
   close-up photo of a sad face."), including the wording the zero-shot prompts in ``tasks.py`` use.
4. **Loss** (``loss``). CLIP's softmax loss (or SigLIP's sigmoid loss) over images x the batch's distinct
   captions. Captions made from labels are not unique to their image: with ``positives: labels`` an
   image counts as a positive of every caption its labels agree with ("a photo of a woman." for every
   woman in the batch) and a pair whose caption names a label the image lacks is left out of the loss;
   ``positives: pairs`` is the plain one-caption-per-image objective. With label positives a third or
   more of all pairs are positive, so identical features for every image cost little: started at the
   usual logit scale (10 for SigLIP, 14 for CLIP) both losses collapsed to that within ten steps. The
   recipe starts at scale 1 (``init_logit_scale: 0``) and lets the scale grow. With ``prompt_loss_weight``
   the zero-shot classifier's own cross-entropy is added (``prompt_loss``): each image against every class
   prompt of each task it is labelled for, the class features made as the zero-shot method makes them.
5. **Sampling** (``data.epoch_order``). facial_expressions and FER+ are mostly neutral and happy faces: their
   images are pooled and drawn with probability ``count(class) ** -emotion_balance`` (0 = as found, 1 = class-balanced).
6. **Speed** (``model``). Training drops a share of the patch tokens (FLIP-style ``patch_drop``) except in
   the last ``unmasked_epochs``, which close the gap to full-token inference.

The loop runs on the shared engine (``faceprompt.engine``): its schedule, optimizer step, checkpoint and
seeding. Training runs on the CPU by default (about 40 minutes on two cores); ``device: cuda`` moves the
model, the image cache and the augmentation to a GPU. Each epoch ends with an atomic checkpoint
(``work_dir/checkpoint.safetensors``: weights, optimizer, schedule, every random state, the config; no
pickle), from which ``--resume`` continues, on either device, exactly as an uninterrupted run would. The run
ends by writing the open_clip local-dir folder (``open_clip_config.json`` + ``open_clip_model.safetensors``
in fp16) and a zero-shot evaluation on the held-out test splits.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open_clip
import torch

from faceprompt.engine import state as engine_state
from faceprompt.engine.optim import optimizer_step
from faceprompt.engine.progress import bar, interruptible
from faceprompt.engine.runtime import LocalRuntime, make_runtime
from faceprompt.engine.schedule import warmup_cosine
from faceprompt.engine.seeding import epoch_seed
from faceprompt.io import relative_to, write_json_atomic
from faceprompt.pretraining.config import RESUMABLE_CHANGES, PretrainConfig
from faceprompt.pretraining.data import (Labels, PretrainData, batches, epoch_order, load_data, roles, split_counts,
                                         split_data, write_splits_file)
from faceprompt.pretraining.loss import TokenCache, prepare_step, step_loss
from faceprompt.pretraining.prompt_loss import ClassPrompts
from faceprompt.pretraining.model import (backbone_name, check_image_size, create_model, export_local_dir,
                                          make_optimizer, set_patch_drop)
from faceprompt.pretraining.scoring import evaluate_backbone, format_report, score_training_model

log = logging.getLogger(__name__)

CHECKPOINT_FILE = engine_state.CHECKPOINT_FILE
LEGACY_CHECKPOINT = "last.pt"  # an earlier version's pickle checkpoint: never loaded
SEED_STRIDE = 1000  # epoch e of seed s draws its captions, crops and order from seed s * 1000 + e
GRAD_CLIP = 1.0
DEFAULT_COMMAND = "faceprompt pretrain --config configs/pretrain_faceclip_tiny.yaml"
MAX_LOGIT_SCALE = math.log(100)


@dataclass
class PretrainResult:
    out: Path
    seconds: float
    parameters: int
    size_bytes: int
    test: dict = field(default_factory=dict)
    device: str = ""


@dataclass
class _Run:
    """A pretraining run ready for its epochs."""

    cfg: PretrainConfig
    runtime: LocalRuntime
    model: torch.nn.Module
    tokenizer: object
    tokens: TokenCache
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_images: torch.Tensor
    train_labels: Labels
    val: tuple[torch.Tensor, Labels, np.ndarray]
    steps_per_epoch: int
    class_prompts: ClassPrompts | None = None  # the zero-shot classifier's prompts, when its loss is on

    @property
    def checkpoint(self) -> Path:
        return Path(self.cfg.work_dir) / CHECKPOINT_FILE


def _advice(cfg: PretrainConfig) -> str:
    return f"delete {Path(cfg.work_dir) / CHECKPOINT_FILE} and run without --resume to pretrain again"


def check_resume(cfg: PretrainConfig) -> None:
    """Before any work: the checkpoint must be readable, never a pickle, and from the same recipe."""
    work = Path(cfg.work_dir)
    legacy = work / LEGACY_CHECKPOINT
    if not (work / CHECKPOINT_FILE).is_file() and legacy.is_file():
        raise engine_state.CheckpointError(
            f"{legacy}: an earlier version's pickle checkpoint, which is never loaded (unpickling can run "
            f"code); run without --resume to pretrain again")
    if not (work / CHECKPOINT_FILE).exists():
        raise FileNotFoundError(f"--resume: nothing to resume in {work} (no {CHECKPOINT_FILE}); run without --resume")
    info = engine_state.stored_info(work / CHECKPOINT_FILE, _advice(cfg))
    engine_state.check_same_recipe(info.get("config", {}), cfg.to_dict(), RESUMABLE_CHANGES,
                                   f"resume {work / CHECKPOINT_FILE}")


def _start(cfg: PretrainConfig, runtime: LocalRuntime, rows, images: torch.Tensor) -> _Run:
    device = runtime.device
    train_rows = rows[rows["split"] == "train"]
    # uint8 images are small (about 12 KB each at 64 px): they live on the training device.
    train_images = images[torch.as_tensor(train_rows.index.to_numpy().copy())].to(device)
    train_labels = Labels.from_rows(train_rows)
    val_images, val_labels, val_sets = split_data(rows, images, "val", cfg.val_limit, cfg.seed)
    scale = {} if cfg.init_logit_scale is None else {"init_logit_scale": cfg.init_logit_scale}
    model = create_model(cfg.model, cfg.seed, **scale).to(device)
    if cfg.freeze_token_embedding:
        model.text.token_embedding.weight.requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(cfg.model)
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = len(epoch_order(train_labels, cfg.emotion_balance, np.random.default_rng(0),
                                      cfg.emotion_samples, cfg.age_balance)) // cfg.batch_size
    scheduler = warmup_cosine(optimizer, steps_per_epoch * cfg.epochs, cfg.warmup_steps, cfg.lr, cfg.min_lr)
    tokens = TokenCache(tokenizer, model.text.context_length)
    class_prompts = ClassPrompts.build(tokens) if cfg.prompt_loss_weight > 0 else None
    return _Run(cfg, runtime, model, tokenizer, tokens, optimizer, scheduler, train_images, train_labels,
                (val_images.to(device), val_labels, val_sets), steps_per_epoch, class_prompts)


def _train_epoch(run: _Run, epoch: int, progress: bool) -> float:
    """One epoch of contrastive steps; its mean loss. Every draw derives from (seed, epoch); patch dropping
    draws from torch's global generator, which the checkpoint carries."""
    cfg, model, device = run.cfg, run.model, run.runtime.device
    seed = epoch_seed(cfg.seed, epoch, SEED_STRIDE)
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    order = epoch_order(run.train_labels, cfg.emotion_balance, np.random.default_rng([cfg.seed, epoch]),
                        cfg.emotion_samples, cfg.age_balance)
    set_patch_drop(model, cfg.patch_drop if epoch < cfg.epochs - cfg.unmasked_epochs else 0.0)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    losses = []
    steps = bar(list(batches(order, cfg.batch_size))[:run.steps_per_epoch], f"epoch {epoch + 1}/{cfg.epochs}",
                progress, unit="step")
    for index in steps:
        batch = run.train_images[torch.as_tensor(index, device=device)]
        inputs = prepare_step(batch, run.train_labels.take(index), run.tokens, cfg, rng, gen).to(device)
        loss = step_loss(model, inputs, cfg.loss, run.class_prompts, cfg.prompt_loss_weight, cfg.age_neighbour_weight)
        optimizer_step(loss, run.optimizer, run.scheduler, run.runtime, params, GRAD_CLIP)
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        losses.append(loss.item())
        steps.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    set_patch_drop(model, 0.0)
    model.eval()
    return float(np.mean(losses))


def _epochs(run: _Run, state: dict, progress: bool, resume_hint: str) -> None:
    """Train the remaining epochs, checkpointing after each; Ctrl-C ends with errors.Interrupted."""
    cfg = run.cfg
    session_start = time.perf_counter() - state["seconds"]
    with interruptible("pretraining", resume_hint) as done:
        done["done"] = state["epoch"]
        for epoch in range(state["epoch"], cfg.epochs):
            entry = {"epoch": epoch + 1, "loss": _train_epoch(run, epoch, progress)}
            entry["seconds"] = time.perf_counter() - session_start
            if cfg.val_limit:
                entry["val"] = score_training_model(run.model, backbone_name(cfg), run.tokenizer, *run.val)
                log.info("epoch %d val zero-shot:\n%s", epoch + 1, format_report(entry["val"]))
            state["history"].append(entry)
            state.update(epoch=epoch + 1, step=state["step"] + run.steps_per_epoch,
                         seconds=time.perf_counter() - session_start)
            engine_state.save_checkpoint(run.checkpoint, run.model.state_dict(), run.optimizer, run.scheduler,
                                         {**state, "config": cfg.to_dict()})
            done["done"] = epoch + 1
            log.info("epoch %d: loss %.4f, %.0f s so far", epoch + 1, entry["loss"], state["seconds"])


def _resume(run: _Run) -> dict:
    saved = engine_state.load_checkpoint(run.checkpoint, run.optimizer, run.scheduler, _advice(run.cfg))
    try:
        run.model.load_state_dict(saved.model)
    except RuntimeError as err:
        raise engine_state.CheckpointError(f"{run.checkpoint}: does not fit model {run.cfg.model} "
                                           f"({str(err).splitlines()[0]}); {_advice(run.cfg)}") from None
    log.info("resumed from %s after epoch %d", run.checkpoint, saved.info["epoch"])
    return {k: saved.info[k] for k in ("epoch", "step", "seconds", "history")}


def _finish(run: _Run, rows, images: torch.Tensor, state: dict, started: float, command: str) -> PretrainResult:
    """Export the model, record the recipe and score the held-out test split zero-shot."""
    cfg, out = run.cfg, Path(run.cfg.out)
    export_local_dir(run.model, cfg, out)
    write_splits_file(rows, out / "splits.csv.gz")
    test_images, test_labels, test_sets = split_data(rows, images, "test")
    test = evaluate_backbone(backbone_name(cfg), f"local-dir:{out.resolve()}", test_images, test_labels, test_sets)
    log.info("held-out test zero-shot:\n%s", format_report(test))
    size = (out / "open_clip_model.safetensors").stat().st_size
    params = sum(p.numel() for p in run.model.parameters())
    device = run.runtime.describe()
    write_json_atomic(out / "recipe.json", {
        "command": command,
        "config": {**cfg.to_dict(), "out": relative_to(out)}, "train_seconds": round(state["seconds"], 1),
        "total_seconds": round(time.perf_counter() - started, 1), "threads": cfg.threads, "device": device,
        "parameters": params, "weights_bytes": size, "roles": roles(cfg, rows), "splits": split_counts(rows),
        "history": state["history"], "test_zero_shot": test, "torch": torch.__version__,
    })
    return PretrainResult(out, state["seconds"], params, size, test, device)


def check_fresh_start(cfg: PretrainConfig) -> None:
    """A new run (no --resume, no --overwrite) must not replace a model or a checkpoint that is there."""
    there = [p for p in (Path(cfg.out) / "open_clip_model.safetensors", Path(cfg.work_dir) / CHECKPOINT_FILE)
             if p.exists()]
    if there:
        raise FileExistsError(f"{', '.join(map(str, there))} already there: continue that run with --resume, "
                              f"replace it with --overwrite, or choose another out and work_dir")


def pretrain(cfg: PretrainConfig, resume: bool = False, progress: bool = True, data: PretrainData | None = None,
             resume_hint: str | None = None, command: str = DEFAULT_COMMAND, overwrite: bool = False
             ) -> PretrainResult:
    """Run the whole recipe; returns where the model went, how long it took and its test numbers.

    ``data``: rows and images to train on instead of the shared data folder's (benchmarks, tests).
    ``resume=True`` continues from ``work_dir``'s checkpoint and refuses a changed recipe, before any work.
    ``resume_hint``: the command an interruption message tells the user to run.
    ``command``: the command that reproduces the run, recorded in ``recipe.json``.
    ``overwrite=True`` lets a new run replace the model in ``out`` and the checkpoint in ``work_dir``.
    """
    cfg.validate()
    check_image_size(cfg)
    if resume:
        check_resume(cfg)
    elif not overwrite:
        check_fresh_start(cfg)
    runtime = make_runtime(cfg.device, precision="fp32", accelerate=False)
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    Path(cfg.work_dir).mkdir(parents=True, exist_ok=True)
    data = data or load_data(cfg)
    rows, images = data.rows.reset_index(drop=True), data.images
    if len(rows) != len(images):
        raise ValueError(f"{len(rows)} rows but {len(images)} images: each row needs its image")
    run = _start(cfg, runtime, rows, images)
    state = _resume(run) if resume else {"epoch": 0, "step": 0, "seconds": 0.0, "history": []}
    _epochs(run, state, progress, resume_hint or "faceprompt pretrain --config <the same config> --resume")
    return _finish(run, rows, images, state, started, command)
