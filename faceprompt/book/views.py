"""The protocol chapter's measurement of ``feature_views``: the task balance's emotion copies on cached image
features with one frozen augmented view each, against several views drawn one per epoch
(``benchmarks/bench_feature_views.py``'s JSON). Keys start with ``views-``."""
from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd

from faceprompt.book._machinery.glue import glue, points
from faceprompt.io import read_json

VIEWS_RESULT = "benchmarks/results/cpu-2026-12-07-views/feature_views.json"
CELLS = {"ferplus/emotion": "FER+ emotion", "utkface/age": "UTKFace age", "utkface/gender": "UTKFace gender"}


def views_table(record: dict) -> pd.DataFrame:
    """Per number of views: every test score's mean and spread over the seeds, in percent."""
    rows = {}
    for views, entry in record["summary"].items():
        row = {}
        for cell, label in CELLS.items():
            for metric, name in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy")):
                score = entry[f"{cell}/{metric}"]
                row[f"{label} {name}"] = f"{100 * score['mean']:.1f} ± {100 * score['sd']:.1f}"
        rows[f"{views} view{'s' if int(views) > 1 else ''}"] = row
    return pd.DataFrame(rows).rename_axis("test score (%, mean ± sd over seeds)")


def verdict(changes: list[float]) -> str:
    """Whether the mean paired change is beyond twice its standard error over the seeds, in words."""
    if len(changes) < 2:
        return "one seed only: no spread to judge the change by"
    error = statistics.stdev(changes) / len(changes) ** 0.5
    mean = statistics.mean(changes)
    size = f"the mean change's standard error over the seeds is {points(error).lstrip('+')}"
    if abs(mean) <= 2 * error:
        return f"That is within the noise between seeds ({size}): more views did not measurably change the scores."
    return f"That is beyond twice the noise between seeds ({size})."


def glue_views(path: str | Path = VIEWS_RESULT) -> pd.DataFrame:
    """Glue the table (``views-table``), the run's sizes, and the change of FER+ emotion accuracy from one view to
    the most views, paired by seed (``views-emotion-change``)."""
    record = read_json(path)
    most = max(record["summary"], key=int)
    changes = record["summary"][most]["ferplus/emotion/accuracy_change_by_seed"]
    glue("views-most", most)
    glue("views-seeds", str(len(changes)))
    glue("views-epochs", str(record["epochs"]))
    glue("views-train-rows", f"{record['train_rows']:,}")
    glue("views-emotion-rows", f"{record['emotion_rows']:,}")
    glue("views-duplicates", f"{record['duplicates']:,}")
    glue("views-per-face", f"{record['duplicates'] / record['emotion_rows']:.1f}")
    glue("views-emotion-change", f"{points(statistics.mean(changes))} (from {points(min(changes))} to "
                                 f"{points(max(changes))})")
    glue("views-verdict", verdict(changes))
    return glue("views-table", views_table(record), display=False)
