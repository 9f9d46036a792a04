"""Task weights that follow the losses: the thesis's balancing of the multitask sum.

Every step each task's (unweighted) loss updates an exponential moving average,
``ema = alpha * ema + (1 - alpha) * loss`` (the first value starts it). At the start of every
epoch the weight of task t is ``data_t / ema_t``, renormalised to sum 1, where ``data_t`` is
``N / (samples labelled for t)`` scaled so the data weights sum to the number of tasks: a task
that is rare in the data or already has a small loss gets more of the gradient. A task not yet
seen counts as ema 1. A step where no sample is labelled for a task feeds it a loss of 0, as the
thesis's masked loss does.
"""
from __future__ import annotations

import torch


def data_task_weights(labels: torch.Tensor, tasks: tuple[str, ...]) -> dict[str, float]:
    """``N / count_t`` per task over a [N, T] label matrix (-1 = missing), scaled to sum to T; 1 for an
    unlabelled task."""
    total = labels.shape[0]
    raw = []
    for j in range(len(tasks)):
        count = int((labels[:, j] >= 0).sum())
        raw.append(total / count if count else 1.0)
    scale = len(raw) / sum(raw)
    return {task: w * scale for task, w in zip(tasks, raw)}


class LossEMATaskWeights:
    """The running loss averages and the weights they give; ``state()`` / ``load()`` survive a resume."""

    def __init__(self, data_weights: dict[str, float], alpha: float = 0.95):
        self.data_weights, self.alpha = dict(data_weights), float(alpha)
        self.ema: dict[str, float | None] = {task: None for task in data_weights}

    def update(self, losses: dict[str, float]) -> None:
        for task, value in losses.items():
            old = self.ema[task]
            self.ema[task] = float(value) if old is None else self.alpha * old + (1 - self.alpha) * float(value)

    def weights(self) -> dict[str, float]:
        """The weights for the next epoch, summing to 1."""
        raw = {task: self.data_weights[task] / max(1.0 if ema is None else ema, 1e-8)
               for task, ema in self.ema.items()}
        total = sum(raw.values())
        return {task: w / total for task, w in raw.items()}

    def state(self) -> dict[str, float | None]:
        return dict(self.ema)

    def load(self, state: dict[str, float | None]) -> None:
        self.ema.update({task: state.get(task) for task in self.ema})
