"""Zero-shot scores of a pretrained model, through the project's own zero-shot method and metrics.

Predictions come from ``build_model("zero-shot", backbone)`` (the template class features every other
zero-shot number uses); scores from :mod:`faceprompt.metrics` (its macro-F1 counts the classes in the truth or
the predictions, like scikit-learn's).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from faceprompt import metrics
from faceprompt.backbones import Backbone, get_spec, load_backbone
from faceprompt.pretraining.augment import normalize
from faceprompt.pretraining.data import Labels
from faceprompt.tasks import AGE_BINS, EMOTIONS, age_to_bin


def task_metrics(task: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """accuracy (+ 1-off for age; macro-F1 and balanced accuracy for emotion) over labelled images (y >= 0)."""
    y, pred = metrics.labelled(y, pred)
    if not len(y):
        return {}
    out = {"n": int(len(y)), "accuracy": metrics.accuracy(y, pred)}
    if task == "age":
        out["one_off"] = metrics.one_off_accuracy(y, pred)
    if task == "emotion":
        out["macro_f1"] = metrics.macro_f1(y, pred, len(EMOTIONS))
        # FER+'s test set is skewed like its train set: the mean per-class recall shows the rare classes.
        out["balanced_accuracy"] = metrics.balanced_accuracy(y, pred, len(EMOTIONS))
    return out


def class_indices(labels: Labels) -> dict[str, np.ndarray]:
    age_bins = np.array([AGE_BINS.index(b) if (b := age_to_bin(a)) else -1 for a in labels.age], dtype=np.int64)
    return {"gender": labels.gender, "age": age_bins, "emotion": labels.emotion}


def evaluate_split(predictions: dict[str, np.ndarray], labels: Labels, datasets: np.ndarray) -> dict:
    """dataset -> task -> metrics, for every task a dataset has labels for."""
    truth = class_indices(labels)
    report: dict = {}
    for dataset in sorted(set(datasets)):
        rows = datasets == dataset
        for task, y in truth.items():
            scores = task_metrics(task, y[rows], predictions[task][rows])
            if scores:
                report.setdefault(dataset, {})[task] = scores
    return report


@torch.no_grad()
def zero_shot_predictions(backbone: Backbone, images_u8: torch.Tensor, batch_size: int = 256) -> dict[str, np.ndarray]:
    """The zero-shot method's predicted class per task for uint8 images."""
    from faceprompt.prompts import build_model

    model = build_model("zero-shot", backbone).eval()
    predictions: dict[str, list[np.ndarray]] = {t: [] for t in model.task_names}
    for i in range(0, len(images_u8), batch_size):
        logits = model(normalize(images_u8[i:i + batch_size]).to(backbone.device)).logits
        for task in predictions:
            predictions[task].append(logits[task].argmax(1).cpu().numpy())
    return {t: np.concatenate(v) for t, v in predictions.items()}


def score_training_model(model: nn.Module, backbone_name: str, tokenizer, images_u8: torch.Tensor, labels: Labels,
                         datasets: np.ndarray) -> dict:
    """Zero-shot scores of the model being trained, on a frozen copy of it (training is left untouched)."""
    backbone = Backbone(get_spec(backbone_name), copy.deepcopy(model), None, "in-training")
    backbone.tokenizer = tokenizer
    return evaluate_split(zero_shot_predictions(backbone, images_u8), labels, datasets)


def evaluate_backbone(backbone_name: str, weights: str | None, images_u8: torch.Tensor, labels: Labels,
                      datasets: np.ndarray) -> dict:
    """Zero-shot through the project's own path: load_backbone -> build_model('zero-shot')."""
    return evaluate_split(zero_shot_predictions(load_backbone(backbone_name, weights=weights), images_u8),
                          labels, datasets)


def format_report(report: dict) -> str:
    lines = []
    for dataset, tasks in report.items():
        parts = []
        for task, m in tasks.items():
            extra = "".join(f" {k}={v:.3f}" for k, v in m.items() if k not in ("n", "accuracy"))
            parts.append(f"{task} acc={m['accuracy']:.3f}{extra} (n={m['n']})")
        lines.append(f"  {dataset}: " + "; ".join(parts))
    return "\n".join(lines)
