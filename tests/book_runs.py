"""Tiny run folders in the formats training and evaluation write, for the book layer's tests.

``config.json`` (method, backbone, weights, ``train_config`` with the seed), ``metrics.json`` (one record
per epoch), ``eval/metrics.csv`` (method, backbone, added_parameters, dataset, task, n, accuracy, ...),
``eval/confusion.csv``, ``eval/fairness.csv`` and ``eval/summary.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

METRIC_COLUMNS = ["method", "backbone", "added_parameters", "dataset", "task", "n", "accuracy",
                  "balanced_accuracy", "macro_f1", "ece", "fairness_gap", "one_off_accuracy", "mean_abs_bin_error"]


def write_run(runs_dir: Path, folder: str, method: str, scores: dict[tuple[str, str], float], seed: int = 0,
              added: int = 100, trained: bool = True, epochs: int = 2, fairness: list[dict] | None = None) -> Path:
    """One evaluated run: ``scores`` maps (dataset, task) to accuracy (ECE is 1 - accuracy; age gets
    one-off accuracy = accuracy + 0.2)."""
    run = Path(runs_dir) / folder
    (run / "eval").mkdir(parents=True)
    rows = [{"method": method, "backbone": "tiny-pe", "added_parameters": added, "dataset": d, "task": t, "n": 10,
             "accuracy": a, "balanced_accuracy": a, "macro_f1": a - 0.1, "ece": 1 - a, "fairness_gap": None,
             "one_off_accuracy": a + 0.2 if t == "age" else None,
             "mean_abs_bin_error": 1.0 if t == "age" else None} for (d, t), a in scores.items()]
    pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(run / "eval" / "metrics.csv", index=False)
    confusion = [{"dataset": d, "task": t, "true": "a", "predicted": "a", "count": 1} for d, t in scores]
    pd.DataFrame(confusion).to_csv(run / "eval" / "confusion.csv", index=False)
    pd.DataFrame(fairness or [], columns=["dataset", "task", "group", "n", "accuracy", "gap"]).to_csv(
        run / "eval" / "fairness.csv", index=False)
    (run / "eval" / "summary.json").write_text(json.dumps({"method": method, "backbone": "tiny-pe",
                                                           "added_parameters": added}))
    if trained:
        (run / "config.json").write_text(json.dumps({"method": method, "backbone": "tiny-pe", "weights": None,
                                                     "train_config": {"seed": seed}}))
        history = [{"epoch": e + 1, "train_loss": 2.0 - e, "val_mean_accuracy": 0.5 + e / 10} for e in range(epochs)]
        (run / "metrics.json").write_text(json.dumps(history))
    return run


def prepare_synthetic(work_dir: Path, n: int = 40) -> dict[str, str]:
    """A small synthetic dataset prepared like a profile's (``work_dir/data/synthetic``)."""
    from faceprompt.book.datasets import prepare_datasets

    return prepare_datasets([{"name": "synthetic", "n": n, "size": 32}], work_dir, workers=1)
