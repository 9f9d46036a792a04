"""The held-out target: the dataset and task whose labels the backbone never saw, where prompt tuning has
something to learn. Per method: its seed mean and spread there, its gain over zero-shot, and whether tuning
cost anything on the other datasets; the method validation selects (the test split decides nothing)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from faceprompt.book._machinery.glue import glue, percent, points
from faceprompt.book.methods import method_order

SCORES = ("accuracy", "balanced_accuracy", "macro_f1")


def target_scores(metrics: pd.DataFrame, dataset: str, task: str) -> pd.DataFrame:
    """Per method on (dataset, task): seeds, and mean and sample sd over seeds of each of ``SCORES``;
    ``gain`` and ``balanced_gain``: the mean's change from zero-shot; ``gain_over_2sd``: whether the gain
    exceeds twice the seed sd (a single-seed method has no sd and never passes)."""
    rows = metrics[(metrics.dataset == dataset) & (metrics.task == task)]
    if not len(rows):
        raise ValueError(f"target: no evaluated run scores {dataset}/{task} (evaluated: "
                         f"{sorted(set(zip(metrics.dataset, metrics.task)))})")
    if "seed" not in rows.columns:
        rows = rows.assign(seed=0)
    table = []
    for method, part in rows.groupby("method", sort=False):
        entry = {"method": method, "seeds": int(part["seed"].nunique())}
        for score in SCORES:
            values = part[score].astype(float)
            entry[score] = values.mean()
            entry[f"{score}_sd"] = values.std(ddof=1) if len(values) > 1 else np.nan
        table.append(entry)
    table = pd.DataFrame(table).set_index("method")
    table = table.reindex(method_order(table.index))
    if "zero-shot" not in table.index:
        raise ValueError(f"target: zero-shot was not evaluated on {dataset}/{task}")
    base = table.loc["zero-shot"]
    table["gain"] = table["accuracy"] - base["accuracy"]
    table["balanced_gain"] = table["balanced_accuracy"] - base["balanced_accuracy"]
    table["gain_over_2sd"] = table["gain"] > 2 * table["accuracy_sd"].fillna(np.inf)
    return table.reset_index()


def worst_drop_elsewhere(metrics: pd.DataFrame, dataset: str, task: str) -> pd.DataFrame:
    """Per trained method, its largest fall below zero-shot (seed means) on any other (dataset, task):
    what tuning for the target cost where the backbone was already right. Columns: method, worst_drop
    (points, negative = below zero-shot), where."""
    means = metrics.groupby(["method", "dataset", "task"], sort=False)["accuracy"].mean()
    rows = []
    for method in method_order(metrics["method"].unique()):
        if method == "zero-shot":
            continue
        worst, where = np.inf, ""
        for (m, ds, t), value in means.items():
            if m != method or (ds, t) == (dataset, task) or ("zero-shot", ds, t) not in means:
                continue
            change = value - means[("zero-shot", ds, t)]
            if change < worst:
                worst, where = change, f"{ds} {t}"
        rows.append({"method": method, "worst_drop": worst if where else np.nan, "where": where})
    return pd.DataFrame(rows)


def selected_by_validation(runs_dir: str | Path, methods: list[str] | None = None) -> pd.DataFrame:
    """Each trained method's validation score (``config.json``'s ``best_metric``, the mean over its seeds),
    best first: the choice of the shipped default, made without the test split."""
    rows = []
    for config_path in sorted(Path(runs_dir).glob("*/config.json")):
        saved = json.loads(config_path.read_text())
        method, metric = saved.get("method"), saved.get("best_metric")
        if method in (None, "zero-shot") or metric is None or (methods and method not in methods):
            continue
        rows.append({"method": method, "val_metric": float(metric), "run": config_path.parent.name})
    if not rows:
        return pd.DataFrame(columns=["method", "val_metric", "seeds"])
    frame = pd.DataFrame(rows).groupby("method")["val_metric"].agg(["mean", "count"]).reset_index()
    frame.columns = ["method", "val_metric", "seeds"]
    return frame.sort_values("val_metric", ascending=False, ignore_index=True)


def target_display(table: pd.DataFrame, drops: pd.DataFrame) -> pd.DataFrame:
    """The table the results chapter leads with: worded columns, percentages and signed points."""
    def with_sd(mean, sd):
        return percent(mean) + ("" if pd.isna(sd) else f" ± {100 * sd:.1f}")

    drop = drops.set_index("method") if len(drops) else pd.DataFrame(columns=["worst_drop", "where"])
    out = pd.DataFrame({
        "method": table["method"],
        "seeds": table["seeds"].map(lambda n: "" if n <= 1 else str(n)),
        "accuracy (± seed sd)": [with_sd(m, s) for m, s in zip(table["accuracy"], table["accuracy_sd"])],
        "balanced accuracy": [with_sd(m, s) for m, s in zip(table["balanced_accuracy"],
                                                            table["balanced_accuracy_sd"])],
        "macro-F1": table["macro_f1"].map(lambda v: f"{v:.3f}"),
        "gain": ["" if m == "zero-shot" else points(g) for m, g in zip(table["method"], table["gain"])],
        "balanced gain": ["" if m == "zero-shot" else points(g) for m, g in zip(table["method"],
                                                                               table["balanced_gain"])],
        "gain > 2 sd": ["" if m == "zero-shot" else ("yes" if ok else "no")
                        for m, ok in zip(table["method"], table["gain_over_2sd"])],
        "worst change elsewhere": ["" if m not in drop.index or pd.isna(drop.loc[m, "worst_drop"])
                                   else f"{points(drop.loc[m, 'worst_drop'])} ({drop.loc[m, 'where']})"
                                   for m in table["method"]],
    })
    return out.set_index("method")


def glue_target(metrics: pd.DataFrame, dataset: str, task: str, runs_dir: str | Path) -> pd.DataFrame:
    """Glue the held-out target's table (``target-table``) and headline numbers; returns the scores."""
    table = target_scores(metrics, dataset, task)
    drops = worst_drop_elsewhere(metrics, dataset, task)
    glue("target-dataset", dataset)
    glue("target-task", task)
    base = table[table.method == "zero-shot"].iloc[0]
    glue("target-zero-shot", percent(base["accuracy"]))
    glue("target-zero-shot-balanced", percent(base["balanced_accuracy"]))
    trained = table[table.method != "zero-shot"].sort_values("accuracy", ascending=False)
    best = trained.iloc[0]
    glue("target-best-method", best["method"])
    glue("target-best", percent(best["accuracy"]))
    glue("target-best-gain", points(best["gain"]))
    glue("target-best-balanced-gain", points(best["balanced_gain"]))
    passed = trained[trained["gain_over_2sd"]]["method"].tolist()
    glue("target-over-2sd", f"{len(passed)} of {len(trained)}")
    worst = drops.dropna(subset=["worst_drop"]).sort_values("worst_drop")
    glue("target-worst-elsewhere", "none measured" if not len(worst) else
         f"{points(worst.iloc[0]['worst_drop'])} ({worst.iloc[0]['method']}, {worst.iloc[0]['where']})")
    chosen = selected_by_validation(runs_dir)
    glue("target-selected", chosen.iloc[0]["method"] if len(chosen) else "none")
    glue("target-selection-table", chosen.assign(val_metric=chosen["val_metric"].map(percent)).rename(
        columns={"val_metric": "validation mean accuracy (seed mean)"}).set_index("method"), display=False)
    glue("target-table", target_display(table, drops), display=False)
    return table
