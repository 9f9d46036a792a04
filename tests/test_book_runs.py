"""One method's runs: options, training configs, clearing a run folder, the zero-shot glue (faceprompt.book.runs)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from faceprompt.book._machinery import glue as G
from faceprompt.book import runs


SHARED = {"context_tokens": 8, "init": "a face", "tokens": 10}  # a profile's method_options, for every method


def test_each_method_takes_the_shared_options_its_parts_declare():
    assert runs.method_options("coop", SHARED) == {"context_tokens": 8, "init": "a face"}
    assert runs.method_options("vpt-ts", SHARED) == {"tokens": 10}
    assert runs.method_options("softcpt+vpt", {**SHARED, "deep": True}) == {**SHARED, "deep": True}
    assert runs.method_options("v2pt", {**SHARED, "latent": 4}) == {"tokens": 10, "latent": 4}
    assert runs.method_options("vpt", None) == {}
    with pytest.raises(ValueError, match=r"method_options \['tokenz'\] are options of no method"):
        runs.method_options("coop", {"context_tokens": 8, "tokenz": 10})


def test_every_book_method_gets_its_token_counts_from_the_shared_options():
    from faceprompt.book.methods import book_methods
    from faceprompt.prompts import resolve_method

    for method in book_methods():
        preset = resolve_method(method)
        context = preset.text in ("coop", "softcpt")
        expected = {**({"context_tokens": 8, "init": "a face"} if context else {}),
                    **({"tokens": 10} if preset.visual in ("vpt", "v2pt") else {})}
        assert runs.method_options(method, SHARED) == expected, method


def test_train_config_lays_the_profiles_fields_over_the_run(tmp_path):
    manifests = {"utkface": str(tmp_path / "u.csv")}
    fields = {"epochs": 3, "lr": 0.01, "patience": None, "method_options": {**SHARED, "deep": True}}
    both = runs.train_config("softcpt+vpt", "tiny-pe", manifests, tmp_path / "runs", fields, seed=1)
    assert (both.epochs, both.lr, both.patience, both.seed) == (3, 0.01, None, 1)
    assert both.method_options == {**SHARED, "deep": True} and both.method_options.visual.deep is True
    text = runs.train_config("coop", "tiny-pe", manifests, tmp_path / "runs", fields)
    assert text.method_options == {"context_tokens": 8, "init": "a face"} and text.epochs == 3
    assert fields["method_options"]["tokens"] == 10  # the shared fields are left as they were
    with pytest.raises(ValueError, match=r"^train_config: unknown field\(s\) \['patiense'\]"):
        runs.train_config("coop", "tiny-pe", manifests, tmp_path / "runs", {"patiense": 3})


def test_data_efficiency_refuses_a_method_entry_in_other_words(tmp_path):
    from faceprompt.book import few_shot

    old = {"vpt": {"options": {"tokens": 5}, "train": {"lr": 0.1}, "steps": 20}}
    with pytest.raises(ValueError, match=r"methods.vpt: unknown key\(s\) \['options', 'train'\]"):
        few_shot.data_efficiency(old, [1], [0], str(tmp_path / "m.csv"), "d", "emotion", "tiny-pe", tmp_path)


def test_train_config_takes_its_splits_from_the_notebook_parameters(tmp_path):
    manifests = {"utkface": str(tmp_path / "u.csv"), "facial_expressions": str(tmp_path / "f.csv")}
    usual = runs.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs")
    assert [s.splits for s in usual.train] == [("train",), ("train",)]
    assert [s.splits for s in usual.val] == [("val",), ("val",)]
    assert usual.run_path() == tmp_path / "runs" / "vpt"
    assert runs.train_config("softcpt+vpt", "tiny-pe", manifests, tmp_path, seed=2).run_path().name == "softcpt_vpt-seed2"
    unseen = runs.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs", datasets=["utkface"],
                               train_splits=["val"], val_splits=[])
    assert [(Path(s.manifest).name, s.splits) for s in unseen.train] == [("u.csv", ("val",))]
    assert unseen.val == ()  # no validation: every epoch runs
    with pytest.raises(ValueError, match="overlap"):
        runs.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs", train_splits=["val"])
    halves = runs.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs", train_splits=["val"],
                               train_part=[0, 0.6], val_part=[0.6, 1])
    assert [(s.splits, s.part) for s in halves.train] == [(("val",), (0.0, 0.6))] * 2
    assert [(s.splits, s.part) for s in halves.val] == [(("val",), (0.6, 1.0))] * 2
    with pytest.raises(ValueError, match=r"val\[0\] .* overlaps train\[0\]"):
        runs.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs", train_splits=["val"],
                          train_part=[0, 0.6], val_part=[0.5, 1])
    with pytest.raises(ValueError, match="none of"):
        runs.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs", datasets=["fairface"])


def test_clear_run_removes_only_run_folders(tmp_path):
    assert runs.clear_run(tmp_path / "absent") is False
    run = tmp_path / "vpt"
    (run / "eval").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    assert runs.clear_run(run) is True and not run.exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(FileExistsError, match="holds no run"):
        runs.clear_run(other)
    assert (other / "thesis.tex").is_file()


def test_zero_shot_and_template_glue():
    runs.glue_zero_shot_scores(pd.DataFrame([{"dataset": "synthetic", "task": "age", "accuracy": 0.25}]))
    assert G.GLUED["zs-synthetic-age"] == "25.0%"
    templates = pd.DataFrame([
        {"dataset": "d", "task": t, "prompts": p, "template": "", "accuracy": a}
        for t, scores in (("gender", (0.8, 0.6, 0.7)), ("age", (0.4, 0.2, 0.3)))
        for p, a in zip(("ensemble", "template 1", "template 2"), scores)])
    table = runs.glue_template_comparison(templates)
    assert list(table.columns[:1]) == ["ensemble"] and G.GLUED["zs-ensemble-gain"] == "+15.0 pp"


def test_training_glue_names_the_run():
    class Fit:
        history = [{}, {}, {}]
        best_epoch = 2
        stopped = "patience"

    runs.glue_training(Fit(), pd.DataFrame([{"dataset": "d", "task": "gender", "accuracy": 0.5}]), "vpt-seed1")
    assert G.GLUED["train-epochs-vpt-seed1"] == "3" and G.GLUED["train-best-epoch-vpt-seed1"] == "2"
    assert G.GLUED["train-stopped-vpt-seed1"] == "patience" and G.GLUED["train-acc-vpt-seed1-d-gender"] == "50.0%"
