"""Reliability curves: accuracy against confidence, on the bins ECE is computed on.

The bins are :func:`faceprompt.metrics.reliability_bins`' (``n_bins`` equal-width bins (lo, hi], the
first including 0), the same records :func:`faceprompt.metrics.expected_calibration_error` sums, so the
diagram and the glued ECE tables describe the same bins. ``faceprompt evaluate`` writes them per
dataset and task to ``eval/reliability.csv``; the curves are read from there, not predicted again.
"""
from __future__ import annotations

import inspect
import os

import numpy as np
import pandas as pd

from faceprompt.book.methods import method_order
from faceprompt.book.results import read_eval_tables
from faceprompt.metrics import confidence_bins, expected_calibration_error, reliability_bins

ECE_BINS = inspect.signature(expected_calibration_error).parameters["n_bins"].default
CURVE_COLUMNS = ["method", "confidence", "accuracy", "count"]

__all__ = ["ECE_BINS", "confidence_bins", "pool_bins", "reliability_curves", "reliability_rows"]


def reliability_rows(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """One row per non-empty bin: mean confidence, accuracy and count of the top-1 predictions."""
    return pd.DataFrame(reliability_bins(probs, labels, n_bins), columns=["bin", *CURVE_COLUMNS[1:]])


def pool_bins(rows: pd.DataFrame) -> pd.DataFrame:
    """Bin records of several datasets merged per bin: counts add, confidence and accuracy are the
    count-weighted means (exactly what the bins of the pooled predictions would hold)."""
    weighted = rows.assign(confidence=rows["confidence"] * rows["count"], accuracy=rows["accuracy"] * rows["count"])
    pooled = weighted.groupby("bin", sort=True)[["confidence", "accuracy", "count"]].sum()
    pooled[["confidence", "accuracy"]] = pooled[["confidence", "accuracy"]].div(pooled["count"], axis=0)
    return pooled.reset_index()


def reliability_curves(runs_dir: str | os.PathLike, task: str) -> pd.DataFrame:
    """One curve per method for ``task`` from the evaluated runs under ``runs_dir``: the bins of its
    seed-0 run, its datasets pooled, in the book's method order. Columns: method, confidence, accuracy, count."""
    table = read_eval_tables(runs_dir, "reliability")
    if not len(table):
        return pd.DataFrame(columns=CURVE_COLUMNS)
    table = table[(table["task"] == task) & (table["seed"] == 0)]
    curves = [pool_bins(rows).assign(method=method) for method, rows in table.groupby("method", sort=False)]
    if not curves:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    order = {m: i for i, m in enumerate(method_order(table["method"]))}
    curves = sorted(curves, key=lambda c: order[c["method"].iloc[0]])
    return pd.concat(curves, ignore_index=True)[CURVE_COLUMNS]
