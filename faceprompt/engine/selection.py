"""Which epoch's prompts are kept, and when patience runs out.

``monitor`` (this code's rule): an epoch is better when the monitored validation metric rises.
``loss_or_accuracy`` (the thesis's rule): an epoch is better when the validation loss falls *or*
the mean accuracy rises; each best is tracked on its own, so an epoch that only lowers the loss
still resets patience and replaces the kept prompts.
"""
from __future__ import annotations

import math

BEST_RULES = ("monitor", "loss_or_accuracy")


def judge_epoch(state, epoch: int, metric: float, loss: float, rule: str = "monitor") -> bool:
    """Update ``state`` (``best_metric``, ``best_loss``, ``best_epoch``, ``bad_epochs``); True when improved."""
    if rule not in BEST_RULES:
        raise ValueError(f"best_rule: {rule!r} must be one of {list(BEST_RULES)}")
    better_metric = state.best_epoch == 0 or metric > state.best_metric
    better_loss = rule == "loss_or_accuracy" and not math.isnan(loss) and loss < state.best_loss
    if better_metric:
        state.best_metric = metric
    if better_loss:
        state.best_loss = loss
    improved = better_metric or better_loss
    if improved:
        state.best_epoch, state.bad_epochs = epoch, 0
    else:
        state.bad_epochs += 1
    return improved
