"""Classification metrics on integer labels and predicted probabilities (numpy, no framework).

Every function takes ``y_true`` / ``y_pred`` (class indices) or ``probs`` [N, C]; rows whose true
label is missing (-1) must be dropped by the caller (``labelled``) so a number never silently
counts unknowns. Conventions follow scikit-learn where one exists (balanced accuracy = mean recall
over the classes present in ``y_true``; macro-F1 over the classes in ``y_true`` or ``y_pred``).
"""
from __future__ import annotations

import numpy as np


def labelled(y_true: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Keep the rows with a label (y_true >= 0) in y_true and every other array."""
    y_true = np.asarray(y_true)
    keep = y_true >= 0
    return (y_true[keep],) + tuple(np.asarray(a)[keep] for a in arrays)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, C] counts; row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean per-class recall over the classes that occur in ``y_true``."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Unweighted mean F1 over the classes that occur in ``y_true`` or ``y_pred``."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(float)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    used = (predicted + actual) > 0
    if not used.any():
        return float("nan")
    denom = predicted + actual  # 2TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(np.mean(f1[used]))


def confidence_bins(confidence: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """The bin index of each top-1 confidence: ``n_bins`` equal-width bins (lo, hi], the first including 0."""
    return np.clip(np.ceil(np.asarray(confidence, dtype=float) * n_bins).astype(int) - 1, 0, n_bins - 1)


def reliability_bins(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> list[dict]:
    """One record per non-empty confidence bin: its index, the mean top-1 confidence, the top-1 accuracy
    and the count. ECE and the reliability diagrams are both made of these records."""
    probs, y_true = np.asarray(probs, dtype=float), np.asarray(y_true)
    if not len(y_true):
        return []
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == y_true
    which = confidence_bins(confidence, n_bins)
    return [{"bin": b, "confidence": float(confidence[which == b].mean()),
             "accuracy": float(correct[which == b].mean()), "count": int((which == b).sum())}
            for b in range(n_bins) if (which == b).any()]


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """ECE over ``n_bins`` equal-width confidence bins (top-1 confidence vs top-1 correctness).

    ECE = sum over bins b of (size of b / N) * abs(acc(b) - conf(b)); bins are (lo, hi], the first includes 0.
    """
    n = len(np.asarray(y_true))
    if not n:
        return float("nan")
    return float(sum(r["count"] / n * abs(r["accuracy"] - r["confidence"])
                     for r in reliability_bins(probs, y_true, n_bins)))


def one_off_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of predictions at most one ordered bin away from the truth (age)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(np.abs(y_true - y_pred) <= 1)) if len(y_true) else float("nan")


def mean_absolute_bin_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute difference between true and predicted bin indices over ordered bins (age)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(np.abs(y_true - y_pred))) if len(y_true) else float("nan")


def offset_counts(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, 2C - 1] counts of (predicted bin - true bin) per true bin; column j is offset j - (C - 1).

    The age error analysis: a row's mass off the centre column shows how far, and to which side,
    the errors on that bin fall.
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    counts = np.zeros((num_classes, 2 * num_classes - 1), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred - y_true + num_classes - 1), 1)
    return counts


def concordance_index(baseline_pred: np.ndarray, model_pred: np.ndarray) -> float:
    """The thesis's concordance index (``concordance_index_computation.py``): the share of images on which a
    model predicts the same class as the zero-shot baseline, labelled or not; how far tuning moved the
    answers, not whether they are right."""
    baseline_pred, model_pred = np.asarray(baseline_pred), np.asarray(model_pred)
    if baseline_pred.shape != model_pred.shape:
        raise ValueError(f"concordance: {baseline_pred.shape} baseline predictions for {model_pred.shape}")
    return float((baseline_pred == model_pred).mean()) if len(model_pred) else float("nan")


def group_accuracy(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> dict[str, tuple[int, float]]:
    """{group: (n, accuracy)} for every non-empty group label (empty strings are skipped)."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups, dtype=str)
    out = {}
    for group in sorted(set(groups) - {""}):
        sel = groups == group
        out[group] = (int(sel.sum()), accuracy(y_true[sel], y_pred[sel]))
    return out


def classification_report(y_true: np.ndarray, probs: np.ndarray, num_classes: int,
                          ordinal: bool = False) -> dict[str, float]:
    """The standard set for one task over labelled rows: n, accuracy, balanced accuracy, macro-F1,
    ECE, and for an ordinal task 1-off accuracy and mean absolute bin error."""
    y_true, probs = labelled(y_true, probs)
    y_pred = probs.argmax(axis=1) if len(y_true) else np.zeros(0, dtype=int)
    report = {
        "n": int(len(y_true)),
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred, num_classes),
        "macro_f1": macro_f1(y_true, y_pred, num_classes),
        "ece": expected_calibration_error(probs, y_true),
    }
    if ordinal:
        report["one_off_accuracy"] = one_off_accuracy(y_true, y_pred)
        report["mean_abs_bin_error"] = mean_absolute_bin_error(y_true, y_pred)
    return report
