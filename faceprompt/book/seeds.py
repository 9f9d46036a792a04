"""Several training seeds: mean and spread per score, and whether a method beats zero-shot."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from faceprompt.book._machinery.glue import glue, key, percent, points
from faceprompt.book.methods import method_order

TASK_SCORES = (("gender", "accuracy"), ("age", "accuracy"), ("emotion", "accuracy"), ("emotion", "macro_f1"))


def seed_table(metrics: pd.DataFrame, min_seeds: int = 2) -> pd.DataFrame:
    """Per method trained with at least ``min_seeds`` seeds, and for zero-shot: mean and spread (sample
    standard deviation over seeds; min and max too) of every (dataset, task, metric) of
    ``TASK_SCORES`` (accuracy of every task, and emotion's macro-F1), and the mean's change from zero-shot.

    Columns: method, seeds, dataset, task, metric, mean, std, min, max, zero_shot, delta.
    """
    if "seed" not in metrics.columns:
        metrics = metrics.assign(seed=0)
    seeds = metrics[metrics.method != "zero-shot"].groupby("method")["seed"].nunique()
    keep = ["zero-shot"] + [m for m, n in seeds.items() if n >= min_seeds]
    rows = []
    for (method, dataset, task), sub in metrics[metrics.method.isin(keep)].groupby(
            ["method", "dataset", "task"], sort=False):
        for t, metric in TASK_SCORES:
            if t != task or metric not in sub.columns:
                continue
            values = sub[metric].astype(float)
            rows.append({"method": method, "seeds": int(sub["seed"].nunique()) if method != "zero-shot" else 0,
                         "dataset": dataset, "task": task, "metric": metric, "mean": values.mean(),
                         "std": values.std(ddof=1) if len(values) > 1 else 0.0, "min": values.min(),
                         "max": values.max()})
    table = pd.DataFrame(rows)
    if not len(table):
        return table
    base = table[table.method == "zero-shot"].set_index(["dataset", "task", "metric"])["mean"]
    table["zero_shot"] = [base.get((r.dataset, r.task, r.metric), np.nan) for r in table.itertuples()]
    table["delta"] = table["mean"] - table["zero_shot"]
    order = {m: i for i, m in enumerate(method_order(table["method"]))}
    return table.sort_values(["method", "dataset", "task", "metric"], kind="stable", ignore_index=True,
                             key=lambda s: s.map(order) if s.name == "method" else s)


def seed_verdicts(table: pd.DataFrame, need: int = 2) -> pd.DataFrame:
    """Whether each seeded method beats zero-shot on ``need`` of the three tasks. A task's score is its
    mean accuracy over the datasets labelling it (emotion: its accuracy); a task counts as improved when
    the method's seed mean is above zero-shot's.

    ``verdict_with_f1`` counts emotion only when its macro-F1 improves too (a method can gain accuracy
    by favouring the frequent classes).

    Columns: method, seeds, gender, age, emotion (change in accuracy), emotion_macro_f1 (change),
    improved (tasks), verdict, verdict_with_f1.
    """
    acc = table[(table.metric == "accuracy")]
    rows = []
    for method, sub in acc[acc.method != "zero-shot"].groupby("method", sort=False):
        deltas = sub.groupby("task")["delta"].mean()
        improved = [t for t in ("gender", "age", "emotion") if deltas.get(t, np.nan) > 0]
        f1 = table[(table.method == method) & (table.task == "emotion") & (table.metric == "macro_f1")]["delta"]
        f1 = f1.mean() if len(f1) else np.nan
        strict = [t for t in improved if t != "emotion" or f1 > 0]
        rows.append({"method": method, "seeds": int(sub["seeds"].max()),
                     **{t: deltas.get(t, np.nan) for t in ("gender", "age", "emotion")}, "emotion_macro_f1": f1,
                     "improved": ", ".join(improved) or "none",
                     "verdict": "yes" if len(improved) >= need else "no",
                     "verdict_with_f1": "yes" if len(strict) >= need else "no"})
    return pd.DataFrame(rows)


def seed_markdown(table: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """The seed table as markdown: one row per method, one column per (dataset, task, metric), each cell
    'mean ± std' in percent (zero-shot: its single value), then the verdict."""
    cols = list(dict.fromkeys(zip(table["dataset"], table["task"], table["metric"])))
    header = ["method", "seeds"] + [f"{d} {t}" + (" (macro-F1)" if m == "macro_f1" else "") for d, t, m in cols]
    header += ["improves on zero-shot (>= 2 of 3 tasks)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    verdict = dict(zip(verdicts["method"], verdicts["improved"] + " -> " + verdicts["verdict"])) if len(verdicts) else {}
    for method, sub in table.groupby("method", sort=False):
        cells = []
        for d, t, m in cols:
            r = sub[(sub.dataset == d) & (sub.task == t) & (sub.metric == m)]
            if not len(r):
                cells.append("")
                continue
            r = r.iloc[0]
            cell = f"{100 * r['mean']:.1f}" if method == "zero-shot" else \
                f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f} ({100 * r['delta']:+.1f})"
            cells.append(cell)
        seeds = "" if method == "zero-shot" else str(int(sub["seeds"].max()))
        lines.append("| " + " | ".join([method, seeds] + cells + [verdict.get(method, "baseline")]) + " |")
    return "\n".join(lines) + "\n"


def glue_seed_results(metrics: pd.DataFrame, out_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed table and verdicts, written to ``out_dir/seed_table.csv``, ``seed_verdicts.csv`` and
    ``seed_table.md`` and glued (``eval-seed-table``, ``eval-seed-verdicts``, ``seed-<method>-verdict``,
    ``seed-count``, ``seed-methods``, ``seed-improving``)."""
    table = seed_table(metrics)
    verdicts = seed_verdicts(table) if len(table) else pd.DataFrame()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "seed_table.csv", index=False)
    verdicts.to_csv(out / "seed_verdicts.csv", index=False)
    text = seed_markdown(table, verdicts) if len(table) else "No method was trained with several seeds.\n"
    (out / "seed_table.md").write_text(text)
    wide = table.assign(cell=[percent(m) if s == 0 else f"{percent(m)} ± {100 * d:.1f}"
                              for m, d, s in zip(table["mean"], table["std"], table["seeds"])]) if len(table) else table
    if len(table):
        wide = wide.pivot_table(index="method", columns=["dataset", "task", "metric"], values="cell",
                                aggfunc="first", sort=False)
        wide = wide.reindex(method_order(wide.index))
    glue("eval-seed-table", wide, display=False)
    shown = verdicts.copy()
    for t in ("gender", "age", "emotion", "emotion_macro_f1"):
        if t in shown.columns:
            shown[t] = shown[t].map(points)
    if len(shown):  # one row per method, named by it; the columns as the chapter words them
        shown = shown.set_index("method").rename(columns={
            "emotion": "emotion (accuracy)", "emotion_macro_f1": "emotion (macro-F1)",
            "improved": "improved tasks", "verdict_with_f1": "verdict, emotion by macro-F1 too"})
    glue("eval-seed-verdicts", shown, display=False)
    for _, r in verdicts.iterrows():
        glue(key("seed", r["method"], "verdict"), f"{r['verdict']} ({r['improved']})")
    seeded = verdicts["seeds"].max() if len(verdicts) else 0
    glue("seed-count", str(int(seeded)))
    # a profile may train some methods with more seeds than others: each method says its own count
    glue("seed-methods", ", ".join(f"{m} ({int(n)} seeds)" for m, n in zip(verdicts["method"], verdicts["seeds"]))
         if len(verdicts) else "none")
    glue("seed-improving", ", ".join(verdicts[verdicts.verdict == "yes"]["method"]) or "none"
         if len(verdicts) else "none")
    glue("seed-improving-f1", ", ".join(verdicts[verdicts.verdict_with_f1 == "yes"]["method"]) or "none"
         if len(verdicts) else "none")
    return table, verdicts
