"""Task weights that follow the losses: the thesis's balancing of the multitask sum.

Every step each task's (unweighted) loss updates an exponential moving average,
``ema = alpha * ema + (1 - alpha) * loss`` (the first value starts it). A step where no sample is
labelled for a task feeds it a loss of 0, as the thesis's masked loss does. At the start of every
epoch the averages give the weights, in one of two forms (``data_t`` is ``N / (samples labelled for t)``,
scaled so the data weights sum to the number of tasks):

``inverse`` (``task_weighting: loss_ema``; the thesis's final ``train_multitask.py``): the weight of
task t is ``1 / ema_t``, renormalised to mean 1 (the weights sum to the number of tasks). Before a task
has an average its ``data_t`` stands in for it, so the first epoch weighs each task by ``1 / data_t``,
that is by its share of labelled samples.

``data_over_loss`` (``task_weighting: loss_ema_data``; the script's older version): the weight of task t
is ``data_t / ema_t``, renormalised to sum 1; a task not yet seen counts as ema 1, so the first epoch
weighs tasks by ``data_t``: a task that is rare in the data or already has a small loss gets more of the
gradient.
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


FORMS = ("inverse", "data_over_loss")


class LossEMATaskWeights:
    """The running loss averages and the weights they give; ``state()`` / ``load()`` survive a resume."""

    def __init__(self, data_weights: dict[str, float], alpha: float = 0.95, form: str = "inverse"):
        if form not in FORMS:
            raise ValueError(f"form: {form!r} must be one of {list(FORMS)}")
        self.data_weights, self.alpha, self.form = dict(data_weights), float(alpha), form
        self.ema: dict[str, float | None] = {task: None for task in data_weights}

    def update(self, losses: dict[str, float]) -> None:
        for task, value in losses.items():
            old = self.ema[task]
            self.ema[task] = float(value) if old is None else self.alpha * old + (1 - self.alpha) * float(value)

    def weights(self) -> dict[str, float]:
        """The weights for the next epoch: mean 1 (``inverse``) or sum 1 (``data_over_loss``)."""
        if self.form == "inverse":
            raw = {task: 1.0 / max(self.data_weights[task] if ema is None else ema, 1e-8)
                   for task, ema in self.ema.items()}
            mean = sum(raw.values()) / len(raw)
            return {task: w / mean for task, w in raw.items()}
        raw = {task: self.data_weights[task] / max(1.0 if ema is None else ema, 1e-8)
               for task, ema in self.ema.items()}
        total = sum(raw.values())
        return {task: w / total for task, w in raw.items()}

    def state(self) -> dict[str, float | None]:
        return dict(self.ema)

    def load(self, state: dict[str, float | None]) -> None:
        self.ema.update({task: state.get(task) for task in self.ema})
