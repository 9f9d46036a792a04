"""Optimizers by name, weight-decay groups, and the one optimizer step both trainers take."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

OPTIMIZERS = ("adamw", "sgd")


def make_optimizer(name: str, params: Iterable, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                   betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.optim.Optimizer:
    """``params``: parameters or parameter groups (dicts that may set their own ``lr`` and ``weight_decay``)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps)
    raise ValueError(f"optimizer: {name!r} must be one of {list(OPTIMIZERS)}")


def decay_groups(named_params: Iterable[tuple[str, nn.Parameter]], weight_decay: float,
                 no_decay: Callable[[str, nn.Parameter], bool]) -> list[dict]:
    """Two groups of the trainable parameters: with ``weight_decay``, and without (where ``no_decay`` says)."""
    decay, plain = [], []
    for name, param in named_params:
        if param.requires_grad:
            (plain if no_decay(name, param) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler, runtime,
                   params: list[nn.Parameter], grad_clip: float | None) -> None:
    """Backward, clip the gradient norm (when ``grad_clip``), step the optimizer and then the schedule.

    Under a gradient scaler (fp16) the gradients are unscaled before clipping and an overflowing step is
    skipped by the runtime."""
    optimizer.zero_grad(set_to_none=True)
    runtime.backward(loss)
    if grad_clip:
        runtime.unscale(optimizer)
        runtime.clip(params, grad_clip)
    runtime.step(optimizer)
    scheduler.step()


def part_groups(model, lr: float, text_lr_scale: float = 1.0) -> list:
    """What the optimizer trains, as parameter groups: the image-side prompts at ``lr``, the text prompt and a
    trained logit scale at ``lr * text_lr_scale`` (the thesis's split in its second stage: every trained tensor
    outside the image tower at a tenth of the rate), left out altogether when ``text_lr_scale`` is 0.
    A scale of 1 gives the plain list of trainable parameters (one group)."""
    if text_lr_scale == 1.0:
        return model.trainable_parameters()
    groups = model.param_groups()
    scale = model.visual.logit_log_scale()
    slow = groups["text"] + [p for p in groups["visual"] if p is scale]
    fast = [p for p in groups["visual"] if p is not scale]
    out = [{"params": fast, "lr": lr}] if fast else []
    if text_lr_scale > 0 and slow:
        out.append({"params": slow, "lr": lr * text_lr_scale})
    if not out:
        raise ValueError(f"text_lr_scale: 0 leaves {model.method!r} nothing to train (it has no image-side prompt)")
    return out
