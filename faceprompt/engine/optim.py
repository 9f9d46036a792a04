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
