"""The learning-rate schedule: linear warm-up to the peak, then cosine down to a floor after the last step."""
from __future__ import annotations

import math

import torch


def lr_at(step: int, total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> float:
    """The learning rate of optimizer step ``step`` (0-based) out of ``total_steps``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, lr: float,
                  min_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule as a scheduler stepped once per optimizer step.

    Every group follows the same curve scaled by its own starting rate (a group created with twice ``lr``
    keeps twice the rate throughout), and the scheduler's state is plain numbers (a checkpoint stores it as JSON).
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, total_steps, warmup_steps, lr, min_lr) / lr)
