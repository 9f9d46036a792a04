"""Reliability curves: accuracy against confidence, on the bins ECE is computed on.

The bins are :func:`faceprompt.metrics.expected_calibration_error`'s: ``n_bins`` equal-width bins
(lo, hi], the first including 0. A test checks that the size-weighted gaps of these rows sum to that
function's ECE, so the diagram and the glued ECE tables describe the same bins.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np
import pandas as pd

from faceprompt.book.methods import method_order
from faceprompt.metrics import expected_calibration_error

ECE_BINS = inspect.signature(expected_calibration_error).parameters["n_bins"].default


def confidence_bins(confidence: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """The bin index of each top-1 confidence: bins (lo, hi], the first including 0."""
    return np.clip(np.ceil(np.asarray(confidence) * n_bins).astype(int) - 1, 0, n_bins - 1)


def reliability_rows(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """One row per non-empty bin: mean confidence, accuracy and count of the top-1 predictions."""
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels)
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    which = confidence_bins(confidence, n_bins)
    rows = [{"confidence": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean()),
             "count": int((which == b).sum())} for b in range(n_bins) if (which == b).any()]
    return pd.DataFrame(rows, columns=["confidence", "accuracy", "count"])


def reliability_curves(runs_dir: str | os.PathLike, manifests: dict[str, str], task: str, bins: int = ECE_BINS,
                       device: str = "cpu", cache_dir: str | None = None,
                       splits: tuple[str, ...] = ("test",)) -> pd.DataFrame:
    """:func:`reliability_rows` of every trained run under ``runs_dir`` for one task on the ``splits``
    rows of ``manifests`` (column ``method``), in the book's method order."""
    from faceprompt.checkpoint import load_prompts
    from faceprompt.data.dataset import DataSource, ManifestDataset, load_sources
    from faceprompt.evaluate import predict

    frame = load_sources([DataSource(m, splits) for m in manifests.values()])
    labels = ManifestDataset(frame, None, (task,)).labels[:, 0].numpy()
    keep = labels >= 0
    tables = []
    for run in sorted(Path(runs_dir).glob("*/prompts.safetensors")):
        model = load_prompts(run.parent, device=device)
        if task in model.task_names:
            probs = predict(model, frame, cache_dir=cache_dir, progress=False)[task][keep]
            tables.append(reliability_rows(probs, labels[keep], bins).assign(method=model.method))
    if not tables:
        return pd.DataFrame(columns=["method", "confidence", "accuracy", "count"])
    table = pd.concat(tables, ignore_index=True)[["method", "confidence", "accuracy", "count"]]
    order = {m: i for i, m in enumerate(method_order(table["method"]))}
    return table.sort_values(["method", "confidence"], key=lambda s: s.map(order) if s.name == "method" else s,
                             ignore_index=True)
