"""The zero-shot classifier's own loss: every image against every class prompt of each task it is labelled for.

The contrastive loss sees only the batch's few dozen captions, each written from a random subset of the
labels; the zero-shot method scores an image against all classes of a task, through each task's templates
(``tasks.py``) ensembled. This term trains exactly that: cross-entropy over the task's classes, with the
class features made as ``TemplatePrompt`` makes them, so the text tower learns them too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from faceprompt.pretraining.data import Labels
from faceprompt.pretraining.scoring import class_indices
from faceprompt.tasks import TASKS

TASK_ORDER = ("gender", "age", "emotion")  # the columns of class_labels


@dataclass(frozen=True)
class ClassPrompts:
    """Every task's class prompts, template-major per task, as one tokenized block."""

    tokens: torch.Tensor  # [sum over tasks of templates x classes, context]
    layout: tuple[tuple[str, int, int], ...]  # (task, classes, templates) in block order

    @classmethod
    def build(cls, tokenize) -> "ClassPrompts":
        texts, layout = [], []
        for name in TASK_ORDER:
            task = TASKS[name]
            for template in task.templates:
                texts += task.prompts(template)
            layout.append((name, task.num_classes, len(task.templates)))
        return cls(tokenize(texts), tuple(layout))

    def __len__(self) -> int:
        return sum(classes * templates for _, classes, templates in self.layout)


def class_labels(gender: np.ndarray, age: np.ndarray, emotion: np.ndarray) -> torch.Tensor:
    """[N, 3] class indices in TASK_ORDER, -1 where unlabelled (age in years becomes its bin, as scoring bins it)."""
    indices = class_indices(Labels(np.asarray(gender), np.asarray(age, dtype=np.float64), np.asarray(emotion)))
    return torch.from_numpy(np.stack([np.asarray(indices[t], np.int64) for t in TASK_ORDER], 1))


def class_features(text_features: torch.Tensor, layout) -> dict[str, torch.Tensor]:
    """Per task, each class's template features normalized, averaged and normalized again (TemplatePrompt)."""
    out, start = {}, 0
    for name, classes, templates in layout:
        block = F.normalize(text_features[start:start + classes * templates], dim=-1)
        out[name] = F.normalize(block.view(templates, classes, -1).mean(0), dim=-1)
        start += classes * templates
    return out


def soft_targets(labels: torch.Tensor, classes: int, neighbour: float) -> torch.Tensor:
    """One-hot rows; with ``neighbour`` > 0 each adjacent class gets that weight (ordered classes: age),
    and every row is renormalized to sum to one."""
    target = F.one_hot(labels, classes).float()
    if neighbour > 0:
        spread = target.clone()
        spread[:, 1:] += neighbour * target[:, :-1]
        spread[:, :-1] += neighbour * target[:, 1:]
        target = spread / spread.sum(1, keepdim=True)
    return target


def prompt_loss(image_features: torch.Tensor, features: dict[str, torch.Tensor], logit_scale: torch.Tensor,
                labels: torch.Tensor, age_neighbour: float = 0.0) -> torch.Tensor:
    """Mean over the tasks present in the batch of each task's cross-entropy over its labelled images."""
    img = F.normalize(image_features, dim=-1)
    terms = []
    for column, name in enumerate(TASK_ORDER):
        y = labels[:, column]
        rows = y >= 0
        if not bool(rows.any()):
            continue
        logits = logit_scale.exp() * img[rows] @ features[name].t()
        target = soft_targets(y[rows], features[name].shape[0], age_neighbour if name == "age" else 0.0)
        terms.append(-(target * F.log_softmax(logits, dim=1)).sum(1).mean())
    if not terms:
        return image_features.sum() * 0.0
    return torch.stack(terms).mean()
