"""The masked multitask loss: cross-entropy per task over the samples labelled for it.

A sample may lack some tasks' labels (UTKFace has no emotion, RAF-DB no age): its target
for that task is -1 and it contributes exactly zero to that task's loss and gradient.
Age may add an ordinal term, the squared earth mover's distance between the predicted
distribution over the ordered bins and the one-hot target (Hou et al., 2016); with
one-hot targets it is the squared distance between the two cumulative distributions.
The thesis used instead Hou et al.'s Eq. 16 regulariser (:func:`hou_penalty`), which weighs the
squared probability of each bin by its distance in years from the true bin.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

IGNORE = -1  # the label index of a missing label (see data.manifest.label_indices)


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                         class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the samples with a label (target >= 0); 0 when none has one.

    With ``class_weights`` the mean is weighted as in ``F.cross_entropy(weight=...)``.
    The zero keeps the graph (``logits.sum() * 0``) so every task's term can always be summed.
    """
    mask = targets >= 0
    if not bool(mask.any()):
        return logits.sum() * 0.0
    weight = None if class_weights is None else class_weights.to(logits.device, torch.float32)
    return F.cross_entropy(logits[mask].float(), targets[mask], weight=weight)


def squared_emd(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared earth mover's distance over ordered bins, labelled samples only; 0 when none.

    EMD^2 = sum_k (CDF_pred(k) - CDF_true(k))^2. It is 0 for a one-hot prediction of the right
    bin and grows with the distance of the predicted mass from it, unlike cross-entropy.
    """
    mask = targets >= 0
    if not bool(mask.any()):
        return logits.sum() * 0.0
    probs = logits[mask].float().softmax(dim=-1)
    target = F.one_hot(targets[mask], probs.shape[-1]).to(probs.dtype)
    return (probs.cumsum(-1) - target.cumsum(-1)).pow(2).sum(-1).mean()


AGE_PLUS_CAP = 90.0  # the upper end the thesis gives the open "70+" bin when taking its midpoint


def age_bin_distances(bins: tuple[str, ...], plus_cap: float = AGE_PLUS_CAP) -> torch.Tensor:
    """[K, K] distances between the bins' midpoints in years, divided by the largest one.

    ``"3-9"`` has midpoint 6; an open bin ``"70+"`` ends at ``plus_cap`` (midpoint 80 with 90).
    """
    mids = []
    for label in bins:
        low, _, high = label.partition("-")
        mids.append((float(low.rstrip("+")) + (plus_cap if label.endswith("+") else float(high))) / 2)
    mids_t = torch.tensor(mids, dtype=torch.float32)
    distances = (mids_t[:, None] - mids_t[None, :]).abs()
    return distances / distances.max()


def hou_penalty(logits: torch.Tensor, targets: torch.Tensor, distances: torch.Tensor,
                omega: float = 3.0, mu: float = 0.0) -> torch.Tensor:
    """Mean over labelled samples of sum_i p_i^2 * (D[i, y]^omega + mu) (Hou et al., Eq. 16); 0 when none.

    ``distances`` is :func:`age_bin_distances`; ``mu < 0`` rewards mass on the true bin and its neighbours.
    """
    mask = targets >= 0
    if not bool(mask.any()):
        return logits.sum() * 0.0
    probs = logits[mask].float().softmax(dim=-1)
    cost = distances.to(probs.device)[:, targets[mask]].T.pow(omega) + mu  # [B, K]: bin i vs the true bin
    return (probs.pow(2) * cost).sum(-1).mean()


ORDINAL_PENALTIES = ("emd", "hou")


def ordinal_penalty(kind: str, omega: float = 3.0, mu: float = 0.0,
                    bins: tuple[str, ...] | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The age penalty by name: ``emd`` (squared EMD) or ``hou`` (Eq. 16 over ``bins``' midpoints)."""
    if kind == "emd":
        return squared_emd
    if kind == "hou":
        from faceprompt.tasks import AGE_BINS

        distances = age_bin_distances(bins or AGE_BINS)
        return lambda logits, targets: hou_penalty(logits, targets, distances, omega, mu)
    raise ValueError(f"age_ordinal: {kind!r} must be one of {list(ORDINAL_PENALTIES)}")


def inverse_frequency_weights(targets: torch.Tensor, num_classes: int, power: float = 1.0) -> torch.Tensor:
    """Class weights proportional to count ** -power over the labelled targets, mean 1 over present classes.

    A class absent from the targets gets weight 0 (it can't appear in the loss anyway).
    """
    labelled = targets[targets >= 0]
    counts = torch.bincount(labelled, minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.clamp(min=1) ** -power, torch.zeros_like(counts))
    present = counts > 0
    if present.any():
        weights = weights / weights[present].mean()
    return weights


def anchor_divergence(logits: dict[str, torch.Tensor], anchor_logits: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over tasks of KL(anchor || tuned), per image, on every image whether labelled or not.

    The anchor is the frozen zero-shot model: tuning on labels of one task then can't silently
    move another task's predictions on images that carry no label for it.
    """
    divergences = [F.kl_div(logits[task].float().log_softmax(-1), anchor_logits[task].float().log_softmax(-1),
                            log_target=True, reduction="batchmean") for task in logits]
    return torch.stack(divergences).mean()


@dataclass(frozen=True)
class LossParts:
    """The total and its terms (detached floats are taken from these for logging)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    per_task: dict[str, torch.Tensor] = field(default_factory=dict)  # each task's unweighted loss


def multitask_loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                   task_weights: dict[str, float] | None = None,
                   class_weights: dict[str, torch.Tensor] | None = None,
                   age_ordinal_weight: float = 0.0,
                   aux: dict[str, torch.Tensor] | None = None,
                   age_ordinal: Callable | None = None, age_ordinal_name: str = "emd") -> LossParts:
    """sum_t w_t * L_t + sum of auxiliary losses, L_t = CE_t (+ age_ordinal_weight * penalty on 'age').

    The age penalty is ``age_ordinal`` (default :func:`squared_emd`; see :func:`ordinal_penalty`).
    ``aux`` holds the method's own terms, already weighted (e.g. V2PT's ``kl``).
    Terms are named ``ce_<task>``, ``<age_ordinal_name>_age`` and ``aux_<name>``.
    """
    task_weights = task_weights or {}
    class_weights = class_weights or {}
    terms: dict[str, torch.Tensor] = {}
    per_task: dict[str, torch.Tensor] = {}
    total = None
    for task, task_logits in logits.items():
        ce = masked_cross_entropy(task_logits, targets[task], class_weights.get(task))
        terms[f"ce_{task}"] = ce
        per_task[task] = ce
        term = task_weights.get(task, 1.0) * ce
        if task == "age" and age_ordinal_weight:
            penalty = (age_ordinal or squared_emd)(task_logits, targets[task])
            terms[f"{age_ordinal_name}_age"] = penalty
            per_task[task] = ce + age_ordinal_weight * penalty
            term = term + task_weights.get(task, 1.0) * age_ordinal_weight * penalty
        total = term if total is None else total + term
    for name, value in (aux or {}).items():
        terms[f"aux_{name}"] = value
        total = value if total is None else total + value
    if total is None:
        raise ValueError("multitask_loss: no task logits and no auxiliary losses")
    return LossParts(total, terms, per_task)
