"""The learning-rate schedule: linear warm-up to the peak, then cosine down to a floor after the last step.

``unit`` says what the curve counts. ``step``: it moves every optimizer step. ``epoch``: the rate stays
fixed for a whole epoch and moves between epochs; epoch ``e`` of ``E`` trains at
``min_lr + (lr - min_lr) * (1 + cos(pi * e / E)) / 2``, which is what ``CosineAnnealingLR(T_max=E)``
stepped once after every epoch gives (the thesis's scripts).
"""
from __future__ import annotations

import math

import torch

SCHEDULE_UNITS = ("step", "epoch")


def lr_at(step: int, total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> float:
    """The learning rate of optimizer step ``step`` (0-based) out of ``total_steps``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, lr: float,
                  min_lr: float, steps_per_epoch: int | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule as a scheduler stepped once per optimizer step.

    With ``steps_per_epoch`` the curve counts epochs instead (``total_steps`` and ``warmup_steps`` are then
    epochs): every step of epoch ``e`` gets the rate of ``e``.
    Every group follows the same curve scaled by its own starting rate (a group created with twice ``lr``
    keeps twice the rate throughout), and the scheduler's state is plain numbers (a checkpoint stores it as JSON).
    """
    per = max(int(steps_per_epoch), 1) if steps_per_epoch is not None else 1
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step // per, total_steps, warmup_steps, lr, min_lr) / lr)
