"""Collecting evaluated runs into the book's tables and glued numbers (faceprompt.book.results)."""
from __future__ import annotations

import pandas as pd
import pytest

from book_runs import write_run
from faceprompt.book._machinery import glue as G
from faceprompt.book import results

CELLS = {("synthetic", "gender"): 0.5, ("synthetic", "age"): 0.2}


@pytest.fixture
def runs(tmp_path):
    write_run(tmp_path, "zero-shot", "zero-shot", CELLS, added=0, trained=False)
    write_run(tmp_path, "vpt", "vpt", {k: v + 0.1 for k, v in CELLS.items()}, seed=0)
    write_run(tmp_path, "vpt-seed1", "vpt", {k: v + 0.3 for k, v in CELLS.items()}, seed=1)
    write_run(tmp_path, "softcpt_vpt", "softcpt+vpt", {k: v - 0.1 for k, v in CELLS.items()}, added=5000)
    write_run(tmp_path, "coop", "coop", {k: v + 0.05 for k, v in CELLS.items()}, added=50, epochs=3)
    return tmp_path


def test_collect_reads_every_run_in_book_order_with_seeds(runs):
    tables = results.collect(runs)
    metrics = tables["metrics"]
    assert list(dict.fromkeys(metrics["method"])) == ["zero-shot", "coop", "vpt", "softcpt+vpt"]
    assert sorted(metrics[metrics.method == "vpt"]["seed"].unique()) == [0, 1]
    assert set(tables) == {"metrics", "confusion", "fairness", "reliability"} and len(tables["confusion"]) == 10
    assert results.run_seed(runs / "zero-shot") == 0 and results.run_seed(runs / "vpt-seed1") == 1


def test_glue_results_means_seeds_and_measures_against_zero_shot(runs):
    metrics = results.collect(runs)["metrics"]
    summary = results.glue_results(metrics)
    assert G.GLUED["acc-vpt-synthetic-gender"] == "70.0%"  # seeds 0.6 and 0.8: their mean
    assert G.GLUED["ece-vpt-synthetic-gender"] == "0.300"
    assert G.GLUED["mean-zero-shot"] == "35.0%" and G.GLUED["mean-vpt"] == "55.0%"
    assert G.GLUED["delta-vpt"] == "+20.0 pp" and G.GLUED["delta-softcpt+vpt"] == "-10.0 pp"
    assert G.GLUED["added-softcpt+vpt"] == "5,000" and G.GLUED["best-method"] == "vpt"
    assert G.GLUED["n-methods"] == "4"
    assert list(summary["method"]) == ["zero-shot", "coop", "vpt", "softcpt+vpt"]
    shown = G.GLUED["eval-methods-table"]
    assert list(shown.index) == list(summary["method"]) and shown.loc["zero-shot", "vs zero-shot"] == ""
    assert shown.loc["coop", "vs zero-shot"] == "+5.0 pp"


def test_accuracy_table_has_a_mean_column_and_book_order(runs):
    table = results.accuracy_table(results.collect(runs)["metrics"])
    assert list(table.index) == ["zero-shot", "coop", "vpt", "softcpt+vpt"]
    assert table.loc["vpt", ("mean", "")] == pytest.approx(0.55)


def test_macro_f1_sits_beside_its_tasks_accuracy_and_stays_out_of_the_mean(runs):
    metrics = results.collect(runs)["metrics"]
    table = results.accuracy_table(metrics)
    wide = results.with_macro_f1(table, metrics, tasks=("age",))
    assert list(wide.columns) == [("synthetic", "gender"), ("synthetic", "age"), ("synthetic", "age macro-F1"),
                                  ("mean", "")]
    assert wide.loc["vpt", ("synthetic", "age macro-F1")] == pytest.approx(0.4 - 0.1)  # seeds 0.3 and 0.5, F1 0.1 lower
    assert wide.loc["vpt", ("mean", "")] == table.loc["vpt", ("mean", "")]
    assert list(results.with_macro_f1(table, metrics).columns) == list(table.columns)  # no emotion labels here


def test_one_off_and_fairness_sentences(runs):
    metrics = results.collect(runs)["metrics"]
    age = results.glue_one_off(metrics)
    assert G.GLUED["oneoff-vpt-synthetic"] == "60.0%" and len(age) == 4
    assert "No evaluated dataset" in results.fairness_summary(pd.DataFrame())
    gaps = pd.DataFrame([{"method": "vpt", "dataset": "utkface", "task": "gender", "gap": 0.12},
                         {"method": "coop", "dataset": "utkface", "task": "age", "gap": 0.3}])
    assert results.fairness_summary(gaps) == "The largest gap between groups is 30.0% (coop, utkface age)."


def test_history_frame_names_the_method_of_every_epoch(runs):
    history = results.history_frame(runs)
    assert history.groupby("method").size().to_dict() == {"coop": 3, "softcpt+vpt": 2, "vpt": 4}


def test_an_empty_folder_gives_empty_tables(tmp_path):
    assert all(len(t) == 0 for t in results.collect(tmp_path).values())
    assert results.chance_levels()["gender"] == pytest.approx(0.5)
