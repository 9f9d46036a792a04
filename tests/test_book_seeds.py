"""Means and spreads over training seeds, and the verdicts against zero-shot (faceprompt.book.seeds)."""
from __future__ import annotations

import pandas as pd
import pytest

from faceprompt.book._machinery import glue as G
from faceprompt.book import seeds

CELLS = [("utkface", "gender"), ("utkface", "age"), ("facial_expressions", "gender"),
         ("facial_expressions", "emotion")]


def metrics() -> pd.DataFrame:
    rows = [{"method": "zero-shot", "seed": 0, "dataset": d, "task": t, "accuracy": 0.5, "macro_f1": 0.4}
            for d, t in CELLS]
    for seed, shift in enumerate((0.1, 0.2, 0.3)):  # better on everything but age
        rows += [{"method": "vpt", "seed": seed, "dataset": d, "task": t,
                  "accuracy": 0.5 + (-shift if t == "age" else shift), "macro_f1": 0.4 + shift} for d, t in CELLS]
    rows += [{"method": "coop", "seed": 0, "dataset": d, "task": t, "accuracy": 0.9, "macro_f1": 0.9}
             for d, t in CELLS]  # one seed: not in the seed table
    return pd.DataFrame(rows)


def test_seed_table_means_spreads_and_verdicts(tmp_path):
    table, verdicts = seeds.glue_seed_results(metrics(), tmp_path)
    assert set(table["method"]) == {"zero-shot", "vpt"}
    age = table[(table.method == "vpt") & (table.task == "age")].iloc[0]
    assert age["mean"] == pytest.approx(0.3) and age["std"] == pytest.approx(0.1) and age["delta"] < 0
    assert set(table[table.task == "emotion"]["metric"]) == {"accuracy", "macro_f1"}
    row = verdicts.iloc[0]
    assert row["method"] == "vpt" and row["verdict"] == "yes" and row["improved"] == "gender, emotion"
    assert {"seed_table.csv", "seed_verdicts.csv", "seed_table.md"} <= {p.name for p in tmp_path.iterdir()}
    assert "± 10.0" in (tmp_path / "seed_table.md").read_text()
    shown = G.GLUED["eval-seed-verdicts"]  # the chapter's table: one row per method, changes in points
    assert list(shown.index) == ["vpt"] and shown.loc["vpt", "verdict"] == "yes"
    assert shown.loc["vpt", "age"].endswith(" pp") and "emotion (macro-F1)" in shown.columns
    assert G.GLUED["seed-vpt-verdict"] == "yes (gender, emotion)" and G.GLUED["seed-count"] == "3"
    assert G.GLUED["seed-methods"] == "vpt (3 seeds)" and G.GLUED["seed-improving"] == "vpt"


def test_an_emotion_gain_without_macro_f1_does_not_count_with_f1(tmp_path):
    frame = metrics()
    worse_f1 = (frame.method == "vpt") & (frame.task == "emotion")
    frame.loc[worse_f1, "macro_f1"] = 0.1
    table, verdicts = seeds.glue_seed_results(frame, tmp_path)
    assert verdicts.iloc[0]["verdict"] == "yes" and verdicts.iloc[0]["verdict_with_f1"] == "no"
    assert G.GLUED["seed-improving-f1"] == "none"


def test_without_several_seeds_there_is_no_verdict(tmp_path):
    frame = metrics()
    table, verdicts = seeds.glue_seed_results(frame[frame.method != "vpt"], tmp_path)
    assert set(table["method"]) == {"zero-shot"} and len(verdicts) == 0
    assert G.GLUED["seed-methods"] == "none" and G.GLUED["seed-count"] == "0"
