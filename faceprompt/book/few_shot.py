"""Data efficiency on the held-out target: a method tuned on k labelled faces per class, for several k.

Each point trains one method on the target task alone (the other tasks have no labels in these subsets),
on ``k`` faces per class drawn with a seed from the target's training split, keeps the epoch that scores best
on its validation split, and is scored on the whole test split. Zero-shot learns nothing, so it is a flat line.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from faceprompt.book._machinery.glue import glue, percent, points
from faceprompt.data.manifest import TASK_COLUMNS, read_manifest, write_manifest

ALL = 0  # a ``shots`` value: every labelled training face
METHOD_SPEC = ("train_config", "steps", "max_epochs")  # what a method's entry in ``methods`` may say


def shots_label(shots: int) -> str:
    return "all" if shots == ALL else str(shots)


def subset_manifest(manifest: str | os.PathLike, task: str, shots: int, seed: int, out: str | os.PathLike,
                    val_limit: int | None = None) -> tuple[Path, int]:
    """``out``: ``shots`` faces per class of ``task`` from ``manifest``'s train split (every one where a
    class has fewer; ``ALL``: all of them), with its val split (a seeded ``val_limit`` of it) and no test
    rows. Returns the path and the number of training faces."""
    frame = read_manifest(manifest)
    column = TASK_COLUMNS[task]
    labelled = frame[frame[column] != ""]
    train = labelled[labelled["split"] == "train"]
    if shots != ALL:
        rng = np.random.default_rng([seed, shots])
        picked = [part.index[rng.permutation(len(part))[:shots]] for _, part in train.groupby(column)]
        train = train.loc[np.sort(np.concatenate(picked))] if picked else train.iloc[:0]
    val = labelled[labelled["split"] == "val"]
    if val_limit and len(val) > val_limit:
        val = val.loc[np.sort(np.random.default_rng(seed).permutation(val.index)[:val_limit])]
    if not len(train):
        raise ValueError(f"{manifest}: no training face labelled for {task}")
    return write_manifest(pd.concat([train, val]), out), len(train)


def epochs_for(faces: int, batch_size: int, steps: int, max_epochs: int) -> int:
    """Enough epochs for about ``steps`` optimizer steps, at most ``max_epochs``: one face per class
    needs many passes, a thousand a single one."""
    per_epoch = max(1, math.ceil(faces / batch_size))
    return int(min(max_epochs, max(1, round(steps / per_epoch))))


def train_point(method: str, backbone: str, manifest: Path, task: str, runs_dir: Path, seed: int, epochs: int,
                fields: dict, weights: str | None, cache_dir: str | None, test_manifest: str, dataset: str) -> dict:
    """Train one point of the curve (TrainConfig ``fields``, on ``task`` alone for ``epochs``) and score it on
    the target's test split."""
    from faceprompt.book import runs
    from faceprompt.evaluate import evaluate
    from faceprompt.training.loop import fit

    config = runs.train_config(method, backbone, {"subset": str(manifest)}, runs_dir,
                               {**fields, "epochs": epochs, "tasks": [task]}, weights=weights,
                               cache_dir=cache_dir, seed=seed)
    runs.clear_run(config.run_path())
    result = fit(config, progress=False)
    scores = evaluate(result.run_dir, manifests=[test_manifest], splits=("test",), datasets=[dataset],
                      cache_dir=cache_dir, progress=False).metrics
    row = scores[(scores.dataset == dataset) & (scores.task == task)].iloc[0]
    return {"accuracy": float(row["accuracy"]), "balanced_accuracy": float(row["balanced_accuracy"]),
            "epochs": epochs, "best_epoch": result.best_epoch}


def data_efficiency(methods: dict[str, dict], shots: list[int], seeds: list[int], target_manifest: str,
                    dataset: str, task: str, backbone: str, work_dir: str | os.PathLike,
                    weights: str | None = None, val_limit: int | None = 400) -> pd.DataFrame:
    """One row per (method, shots, seed): training faces, epochs, test accuracy and balanced accuracy.

    ``methods``: method -> {"train_config": TrainConfig fields (its ``method_options`` among them), "steps":
    optimizer steps to aim for, "max_epochs"}; ``shots`` uses ``ALL`` for every labelled face."""
    for method, spec in methods.items():
        unknown = sorted(set(spec) - set(METHOD_SPEC))
        if unknown:
            raise ValueError(f"methods.{method}: unknown key(s) {unknown}; allowed: {list(METHOD_SPEC)}")
    work = Path(work_dir)
    rows = []
    for k in shots:
        for seed in seeds:
            manifest, faces = subset_manifest(target_manifest, task, k, seed, work / f"k{shots_label(k)}-s{seed}.csv",
                                              val_limit)
            for method, spec in methods.items():
                fields = dict(spec.get("train_config") or {})
                epochs = epochs_for(faces, int(fields.get("batch_size", 32)), int(spec.get("steps", 100)),
                                    int(spec.get("max_epochs", 50)))
                point = train_point(method, backbone, manifest, task, work / f"k{shots_label(k)}", seed, epochs,
                                    fields, weights, str(work / "cache"), target_manifest, dataset)
                rows.append({"method": method, "shots": shots_label(k), "seed": seed, "faces": faces, **point})
    return pd.DataFrame(rows)


def curve_table(points_frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per (method, shots), shots in the order they were run."""
    order = list(dict.fromkeys(points_frame["shots"]))
    table = points_frame.groupby(["method", "shots"], sort=False).agg(
        faces=("faces", "mean"), accuracy=("accuracy", "mean"), accuracy_sd=("accuracy", "std"),
        balanced_accuracy=("balanced_accuracy", "mean"), seeds=("seed", "nunique")).reset_index()
    table["order"] = table["shots"].map(order.index)
    return table.sort_values(["method", "order"], kind="stable").drop(columns="order").reset_index(drop=True)


def glue_data_efficiency(table: pd.DataFrame, zero_shot: float) -> None:
    """Glue the curve's table (``few-shot-table``) and, per method, the fewest faces per class that beat
    zero-shot by more than twice the seed sd (``few-shot-beats-<method>``)."""
    display = table.assign(accuracy=[f"{percent(m)}" + ("" if pd.isna(s) else f" ± {100 * s:.1f}")
                                     for m, s in zip(table["accuracy"], table["accuracy_sd"])],
                           balanced_accuracy=table["balanced_accuracy"].map(percent),
                           faces=table["faces"].map(lambda v: f"{v:,.0f}"),
                           vs_zero_shot=(table["accuracy"] - zero_shot).map(points))
    glue("few-shot-table", display.drop(columns="accuracy_sd").set_index(["method", "shots"]), display=False)
    glue("few-shot-zero-shot", percent(zero_shot))
    for method, part in table.groupby("method", sort=False):
        beats = part[part["accuracy"] - zero_shot > 2 * part["accuracy_sd"].fillna(np.inf)]
        first = beats.iloc[0]["shots"] if len(beats) else None
        glue(f"few-shot-beats-{method}", "no subset tried" if first is None else
             "only with every training face" if first == "all" else f"{first} per class")
