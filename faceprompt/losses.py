"""The masked multitask loss: cross-entropy per task over the samples labelled for it.

A sample may lack some tasks' labels (UTKFace has no emotion, RAF-DB no age): its target
for that task is -1 and it contributes exactly zero to that task's loss and gradient.
Age may add an ordinal term, the squared earth mover's distance between the predicted
distribution over the ordered bins and the one-hot target (Hou et al., 2016); with
one-hot targets it is the squared distance between the two cumulative distributions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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


def multitask_loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                   task_weights: dict[str, float] | None = None,
                   class_weights: dict[str, torch.Tensor] | None = None,
                   age_ordinal_weight: float = 0.0,
                   aux: dict[str, torch.Tensor] | None = None) -> LossParts:
    """sum_t w_t * CE_t (+ age_ordinal_weight * EMD^2 on 'age') + sum of auxiliary losses.

    ``aux`` holds the method's own terms, already weighted (e.g. V2PT's ``kl``).
    Terms are named ``ce_<task>``, ``emd_age`` and ``aux_<name>``.
    """
    task_weights = task_weights or {}
    class_weights = class_weights or {}
    terms: dict[str, torch.Tensor] = {}
    total = None
    for task, task_logits in logits.items():
        ce = masked_cross_entropy(task_logits, targets[task], class_weights.get(task))
        terms[f"ce_{task}"] = ce
        term = task_weights.get(task, 1.0) * ce
        if task == "age" and age_ordinal_weight:
            emd = squared_emd(task_logits, targets[task])
            terms["emd_age"] = emd
            term = term + task_weights.get(task, 1.0) * age_ordinal_weight * emd
        total = term if total is None else total + term
    for name, value in (aux or {}).items():
        terms[f"aux_{name}"] = value
        total = value if total is None else total + value
    if total is None:
        raise ValueError("multitask_loss: no task logits and no auxiliary losses")
    return LossParts(total, terms)
