"""Collect the evaluated runs of a work folder into tables, and glue the headline numbers."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from faceprompt.book._machinery.glue import count, glue, key, percent, points
from faceprompt.book.methods import method_order
from faceprompt.tasks import TASKS

EVAL_TABLES = ("metrics", "confusion", "fairness", "reliability")  # eval/<name>.csv of every evaluated run


def run_seed(run_dir: Path) -> int:
    """The training seed a run's ``config.json`` records (0 for zero-shot and older runs)."""
    path = run_dir / "config.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    return int(saved.get("seed", (saved.get("train_config") or {}).get("seed", 0)))


def read_eval_tables(runs_dir: str | os.PathLike, name: str) -> pd.DataFrame:
    """``eval/<name>.csv`` of every run under ``runs_dir``, with ``method`` and ``seed`` columns."""
    frames = []
    for path in sorted(Path(runs_dir).glob(f"*/eval/{name}.csv")):
        table = pd.read_csv(path)
        if "method" not in table.columns:
            table.insert(0, "method", json.loads((path.parent / "summary.json").read_text())["method"])
        if "seed" not in table.columns:
            table.insert(1, "seed", run_seed(path.parent.parent))
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def collect(runs_dir: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Every evaluated run's tables: {'metrics', 'confusion', 'fairness'}, rows in the book's method order."""
    out = {}
    for name in EVAL_TABLES:
        table = read_eval_tables(runs_dir, name)
        if len(table):
            order = {m: i for i, m in enumerate(method_order(table["method"]))}
            table = table.sort_values("method", key=lambda s: s.map(order), kind="stable", ignore_index=True)
        out[name] = table
    return out


def history_frame(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """Per-epoch metrics (``metrics.json``) of every trained run under ``runs_dir`` (column ``method``)."""
    frames = []
    for path in sorted(Path(runs_dir).glob("*/metrics.json")):
        config = json.loads((path.parent / "config.json").read_text())
        history = pd.DataFrame(json.loads(path.read_text()))
        history.insert(0, "method", config.get("method", path.parent.name))
        frames.append(history)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def accuracy_table(metrics: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Methods as rows, (dataset, task) as columns (the mean over seeds), plus the mean over all columns."""
    table = metrics.pivot_table(index="method", columns=["dataset", "task"], values=value, sort=False)
    table = table.reindex(method_order(table.index))
    table[("mean", "")] = table.mean(axis=1)
    return table


def with_macro_f1(table: pd.DataFrame, metrics: pd.DataFrame, tasks: tuple[str, ...] = ("emotion",)) -> pd.DataFrame:
    """``accuracy_table``'s table with each (dataset, task) column of ``tasks`` followed by that task's
    macro-F1 (the mean over seeds), as (dataset, '<task> macro-F1'); the mean column is left as it was."""
    f1 = accuracy_table(metrics, "macro_f1")
    columns = {}
    for column in table.columns:
        columns[column] = table[column]
        dataset, task = column
        if task in tasks and column in f1.columns:
            columns[(dataset, f"{task} macro-F1")] = f1[column].reindex(table.index)
    return pd.DataFrame(columns, index=table.index)


def versus_zero_shot(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean accuracy over dataset/task rows, its change from zero-shot, added parameters."""
    mean = metrics.groupby("method", sort=False)["accuracy"].mean()
    added = metrics.groupby("method", sort=False)["added_parameters"].first()
    base = mean.get("zero-shot", np.nan)
    table = pd.DataFrame({"mean_accuracy": mean, "vs_zero_shot": mean - base, "added": added})
    return table.reindex(method_order(table.index)).reset_index().rename(columns={"index": "method"})


def glue_results(metrics: pd.DataFrame) -> pd.DataFrame:
    """Glue every accuracy (``acc-<method>-<dataset>-<task>``) and ECE, each method's mean (``mean-<method>``),
    its change from zero-shot (``delta-<method>``), added parameters (``added-<method>``), the best method
    and the per-method table ``eval-methods-table``; returns the per-method summary."""
    means = metrics.groupby(["method", "dataset", "task"], sort=False)[["accuracy", "ece"]].mean().reset_index()
    for _, r in means.iterrows():  # a method trained with several seeds: the mean over seeds
        glue(key("acc", r["method"], r["dataset"], r["task"]), percent(r["accuracy"]))
        glue(key("ece", r["method"], r["dataset"], r["task"]), f"{r['ece']:.3f}")
    summary = versus_zero_shot(metrics)
    for _, r in summary.iterrows():
        glue(key("mean", r["method"]), percent(r["mean_accuracy"]))
        glue(key("delta", r["method"]), points(r["vs_zero_shot"]))
        glue(key("added", r["method"]), count(r["added"]))
    best = summary[summary.method != "zero-shot"].sort_values("mean_accuracy", ascending=False)
    if len(best):
        glue("best-method", best.iloc[0]["method"])
        glue("best-mean", percent(best.iloc[0]["mean_accuracy"]))
        glue("best-delta", points(best.iloc[0]["vs_zero_shot"]))
    glue("n-methods", str(len(summary)))
    glue("eval-methods-table", methods_display(summary), display=False)
    return summary


def methods_display(summary: pd.DataFrame) -> pd.DataFrame:
    """The per-method summary as the book prints it: percentages, signed points, parameter counts."""
    return pd.DataFrame({
        "method": summary["method"], "mean accuracy": summary["mean_accuracy"].map(percent),
        "vs zero-shot": [("" if m == "zero-shot" else points(d)) for m, d in zip(summary["method"],
                                                                                 summary["vs_zero_shot"])],
        "added parameters": summary["added"].map(count)}).set_index("method")


def glue_one_off(metrics: pd.DataFrame) -> pd.DataFrame:
    """Age scores per method and dataset (the mean over seeds where a method has several), with one-off
    accuracy glued as ``oneoff-<method>-<dataset>``."""
    columns = ["accuracy", "one_off_accuracy", "mean_abs_bin_error"]
    age = metrics[metrics.task == "age"].groupby(["method", "dataset"], sort=False)[columns].mean().reset_index()
    for _, row in age.iterrows():
        glue(key("oneoff", row["method"], row["dataset"]), percent(row["one_off_accuracy"]))
    return age


def fairness_summary(fairness: pd.DataFrame | None) -> str:
    """One sentence on the largest accuracy gap between groups, glued as ``fairness-summary``."""
    if fairness is None or not len(fairness):
        text = ("No evaluated dataset in this run carries group labels (race), so no fairness gap is "
                "measured; UTKFace and FairFace have them.")
    else:
        worst = fairness.sort_values("gap", ascending=False).iloc[0]
        text = (f"The largest gap between groups is {percent(worst['gap'])} ({worst['method']}, "
                f"{worst['dataset']} {worst['task']}).")
    return glue("fairness-summary", text)


def chance_levels() -> dict[str, float]:
    """Accuracy of a uniform guess per task."""
    return {name: 1.0 / task.num_classes for name, task in TASKS.items()}
