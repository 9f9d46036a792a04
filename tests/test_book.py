"""Fast checks of the book: table of contents, notebook sources, profiles, the figure helper."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.py"))
EXTERNAL_CHAPTERS = {"book/datasets", "book/demo", "book/faceclip_tiny"}  # written alongside, may be missing


def toc_entries(node) -> list[dict]:
    """Every {file: ...} / {glob: ...} entry of the toc, depth first."""
    out = []
    if isinstance(node, dict):
        if "file" in node or "glob" in node:
            out.append(node)
        for value in node.values():
            out += toc_entries(value)
    elif isinstance(node, list):
        for item in node:
            out += toc_entries(item)
    return out


def test_book_config_files_exist_and_parse():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert config["only_build_toc_files"] is True
    assert config["execute"]["execute_notebooks"] == "off"
    assert "sphinx.ext.autodoc" in config["sphinx"]["extra_extensions"]
    assert toc["format"] == "jb-book" and toc["root"] == "book/intro"


def test_every_toc_chapter_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [e["file"] for e in toc_entries(toc) if "file" in e]
    missing = []
    for name in files:
        if name.startswith("book/_executed/") or name in EXTERNAL_CHAPTERS:
            continue  # made by the pipeline / written by others (placeholders when absent)
        if not any((ROOT / f"{name}{suffix}").is_file() for suffix in (".md", ".ipynb")):
            missing.append(name)
    assert not missing, f"toc names chapters that do not exist: {missing}"
    executed = {Path(f).name for f in files if f.startswith("book/_executed/")}
    assert {"10_data_prep", "20_zero_shot", "40_evaluate", "50_attention", "60_demo"} <= executed
    assert any(e.get("glob") == "book/_executed/30_train_*" for e in toc_entries(toc))


def test_method_chapters_cover_every_method():
    chapters = {p.stem for p in (ROOT / "book" / "methods").glob("*.md")}
    assert {"zero_shot", "coop", "softcpt", "vpt", "v2pt", "combinations"} <= chapters


def test_there_are_six_notebooks():
    assert [p.stem for p in NOTEBOOKS] == ["10_data_prep", "20_zero_shot", "30_train", "40_evaluate",
                                          "50_attention", "60_demo"]


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_paired_and_starts_with_parameters(source):
    import jupytext

    text = source.read_text()
    header = yaml.safe_load(text.split("# ---\n")[1].replace("\n# ", "\n").lstrip("# "))
    formats = header["jupyter"]["jupytext"]["formats"]
    assert "ipynb" in formats and "py:percent" in formats, f"{source.name} is not paired: {formats}"
    notebook = jupytext.read(source)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), \
        f"{source.name}: the first code cell must be tagged 'parameters'"
    assert "import" not in code[0].source, f"{source.name}: the parameters cell holds only values"


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_parameters_are_declared_and_defaults_are_small(source):
    from faceprompt.pipeline import declared_parameters

    declared = declared_parameters(source)
    assert {"work_dir", "threads"} <= declared
    if "datasets" in declared:
        namespace: dict = {}
        import jupytext

        exec(jupytext.read(source).cells[[c.cell_type for c in jupytext.read(source).cells].index("code")].source,
             namespace)
        assert all(d.get("n", 0) <= 500 for d in namespace["datasets"]), "nbval defaults must stay tiny"
        assert namespace["work_dir"] != "work/book", "defaults must not write into the book's work folder"


def test_profiles_parse_and_plan(tmp_path):
    from faceprompt.pipeline import STAGES, load_profile, plan

    for name in ("book_default", "book_gpu", "book_real"):
        profile = load_profile(ROOT / "configs" / f"{name}.yaml")
        stages = plan(profile, ROOT)
        assert len(stages) == len(STAGES)
        train_jobs = [j for j in stages[2] if j.notebook == "30_train"]
        assert [j.parameters["method"] for j in train_jobs] == [m for m in profile.methods
                                                                 for _ in profile.method_seeds(m)]
        assert len({j.output for j in train_jobs}) == len(train_jobs)
        assert {"coop", "softcpt", "vpt", "vpt-ts", "v2pt", "softcpt+vpt"} <= set(profile.methods)
    gpu = load_profile(ROOT / "configs" / "book_gpu.yaml", ["backbone=siglip2-b16", "parallel=1"])
    assert gpu.parameters["backbone"] == "siglip2-b16" and gpu.parallel == 1


def _fake_shared(root: Path, names=("UTKFace", "facial_expressions", "LFW")) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "x.txt").write_text("x")
    return root


def test_default_profile_uses_real_faces_when_the_shared_data_are_there(tmp_path, monkeypatch):
    from faceprompt.pipeline import load_profile, plan

    shared = _fake_shared(tmp_path / "shared")
    monkeypatch.setenv("FACEPROMPT_SHARED_DATA", str(shared))
    monkeypatch.delenv("FACEPROMPT_BOOK_DATA", raising=False)
    profile = load_profile(ROOT / "configs" / "book_default.yaml")
    assert profile.name == "real" and "real faces" in profile.data_source
    assert profile.parameters["backbone"] == "faceclip-tiny"
    roots = {d["name"]: d["root"] for d in profile.parameters["datasets"]}
    assert roots == {"utkface": str(shared / "UTKFace"), "facial_expressions": str(shared / "facial_expressions")}
    assert all(d.get("seed", 0) == 0 for d in profile.parameters["datasets"])  # faceclip-tiny's split seed
    seeded = [j for j in plan(profile, ROOT)[2] if j.parameters.get("method") == "vpt"]
    assert [j.parameters["seed"] for j in seeded] == [0, 1, 2]
    assert [j.output for j in seeded] == ["30_train_vpt", "30_train_vpt-seed1", "30_train_vpt-seed2"]
    for method in ("softcpt", "vpt", "vpt-ts", "v2pt"):
        assert profile.method_seeds(method) == (0, 1, 2)
    monkeypatch.setenv("FACEPROMPT_BOOK_DATA", "synthetic")
    assert load_profile(ROOT / "configs" / "book_default.yaml").name == "default"


def test_default_profile_falls_back_to_synthetic_faces(tmp_path, monkeypatch):
    from faceprompt.pipeline import load_profile, plan

    monkeypatch.delenv("FACEPROMPT_BOOK_DATA", raising=False)
    for shared in (tmp_path / "absent", _fake_shared(tmp_path / "partial", ("UTKFace",))):
        monkeypatch.setenv("FACEPROMPT_SHARED_DATA", str(shared))
        profile = load_profile(ROOT / "configs" / "book_default.yaml")
        assert profile.name == "default" and profile.data_source.startswith("synthetic faces")
        assert [d["name"] for d in profile.parameters["datasets"]] == ["synthetic"]
        assert profile.seeds == {}
        jobs = [j for j in plan(profile, ROOT)[2]]
        assert [j.output for j in jobs][:2] == ["30_train_coop", "30_train_softcpt"]
        assert all("seed" not in j.parameters for j in jobs)


def test_seeds_must_name_trained_methods():
    from faceprompt.pipeline import Profile

    with pytest.raises(ValueError, match="not among the profile's methods"):
        Profile.from_dict({"methods": ["vpt"], "seeds": {"coop": [0, 1]}})
    with pytest.raises(ValueError, match="distinct integers"):
        Profile.from_dict({"methods": ["vpt"], "seeds": {"vpt": [0, 0]}})
    assert Profile.from_dict({"methods": ["vpt"], "seeds": {"vpt": [0, 1]}}).method_seeds("vpt") == (0, 1)


def test_a_method_can_have_its_own_train_parameters():
    from faceprompt.pipeline import Profile, plan

    profile = Profile.from_dict({
        "methods": ["vpt", "v2pt"], "seeds": {"v2pt": [0, 1]},
        "notebooks": {"30_train": {"lr": 0.002, "train_options": {"min_lr": 1e-5, "max_train_samples": 40}}},
        "method_parameters": {"v2pt": {"lr": 0.001, "train_options": {"anchor_weight": 5.0}}}})
    jobs = {j.output: j.parameters for j in plan(profile, ROOT)[2] if j.notebook == "30_train"}
    assert jobs["30_train_vpt"]["lr"] == 0.002
    assert jobs["30_train_vpt"]["train_options"] == {"min_lr": 1e-5, "max_train_samples": 40}
    for run in ("30_train_v2pt", "30_train_v2pt-seed1"):  # every seed; the shared mapping is merged, not replaced
        assert jobs[run]["lr"] == 0.001
        assert jobs[run]["train_options"] == {"min_lr": 1e-5, "max_train_samples": 40, "anchor_weight": 5.0}
    assert jobs["30_train_v2pt-seed1"]["seed"] == 1
    with pytest.raises(ValueError, match="not among the profile's methods"):
        Profile.from_dict({"methods": ["vpt"], "method_parameters": {"v2pt": {"lr": 0.1}}})
    with pytest.raises(ValueError, match="set by the pipeline"):
        Profile.from_dict({"methods": ["vpt"], "method_parameters": {"vpt": {"seed": 3}}})
    with pytest.raises(ValueError, match="not parameters of 30_train"):
        plan(Profile.from_dict({"methods": ["vpt"], "method_parameters": {"vpt": {"learning_rate": 0.1}}}), ROOT)


def test_seed_table_means_spreads_and_verdicts(tmp_path):
    import pandas as pd

    from faceprompt import report

    assert report.run_name("softcpt+vpt", 0) == "softcpt_vpt" and report.run_name("vpt", 2) == "vpt-seed2"
    cells = [("utkface", "gender"), ("utkface", "age"), ("facial_expressions", "gender"),
             ("facial_expressions", "emotion")]
    rows = [{"method": "zero-shot", "seed": 0, "dataset": d, "task": t, "accuracy": 0.5, "macro_f1": 0.4}
            for d, t in cells]
    for seed, shift in enumerate((0.1, 0.2, 0.3)):  # better on everything but age
        rows += [{"method": "vpt", "seed": seed, "dataset": d, "task": t,
                  "accuracy": 0.5 + (-shift if t == "age" else shift), "macro_f1": 0.4 + shift} for d, t in cells]
    rows += [{"method": "coop", "seed": 0, "dataset": d, "task": t, "accuracy": 0.9, "macro_f1": 0.9}
             for d, t in cells]  # one seed: not in the seed table
    table, verdicts = report.glue_seed_results(pd.DataFrame(rows), tmp_path)
    assert set(table["method"]) == {"zero-shot", "vpt"}
    age = table[(table.method == "vpt") & (table.task == "age")].iloc[0]
    assert age["mean"] == pytest.approx(0.3) and age["std"] == pytest.approx(0.1) and age["delta"] < 0
    assert set(table[table.task == "emotion"]["metric"]) == {"accuracy", "macro_f1"}
    row = verdicts.iloc[0]
    assert row["method"] == "vpt" and row["verdict"] == "yes" and row["improved"] == "gender, emotion"
    assert {"seed_table.csv", "seed_verdicts.csv", "seed_table.md"} <= {p.name for p in tmp_path.iterdir()}
    assert "± 10.0" in (tmp_path / "seed_table.md").read_text()


def test_profile_errors_name_the_field(tmp_path):
    from faceprompt.pipeline import Profile, load_profile, plan

    with pytest.raises(ValueError, match="unknown field"):
        Profile.from_dict({"paralel": 2})
    with pytest.raises(ValueError, match="unknown notebook"):
        Profile.from_dict({"notebooks": {"35_nothing": {}}})
    with pytest.raises(ValueError, match="unknown method"):
        Profile.from_dict({"methods": ["vtp"]})
    with pytest.raises(ValueError, match="zero-shot is not trained"):
        Profile.from_dict({"methods": ["zero-shot"]})
    with pytest.raises(ValueError, match="not parameters of the notebook"):
        plan(Profile.from_dict({"notebooks": {"30_train": {"epoch": 3}}}), ROOT)
    with pytest.raises(FileNotFoundError):
        load_profile(tmp_path / "absent.yaml")


def test_job_stamps_change_with_parameters():
    from faceprompt.pipeline import Profile, job_stamp, plan

    first = plan(Profile.from_dict({}), ROOT)[2][0]
    second = plan(Profile.from_dict({"notebooks": {"30_train": {"epochs": 2}}}), ROOT)[2][0]
    assert job_stamp(first, ROOT, "code", "") == job_stamp(first, ROOT, "code", "")
    assert job_stamp(first, ROOT, "code", "") != job_stamp(second, ROOT, "code", "")
    assert job_stamp(first, ROOT, "code", "") != job_stamp(first, ROOT, "other code", "")


def test_savefig_writes_a_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from faceprompt import viz

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = viz.savefig(fig, "line", tmp_path / "figures", close=True)
    assert path == tmp_path / "figures" / "line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        viz.savefig(fig, "../escape", tmp_path)


def test_glue_outside_a_kernel_keeps_the_value():
    from faceprompt import report

    assert report.glue("test-key", "61.2%") == "61.2%"
    assert report.GLUED["test-key"] == "61.2%"
    assert report.percent(0.6123) == "61.2%" and report.points(-0.031) == "-3.1 pp"
    assert report.count(16809984) == "16.81 M" and report.count(7680) == "7,680"


def test_method_options_route_tokens_by_method():
    from faceprompt import report

    assert report.method_options("coop", 8, 10) == {"context_tokens": 8}
    assert report.method_options("vpt-ts", 8, 10) == {"tokens": 10}
    assert report.method_options("softcpt+vpt", 8, 10, {"deep": True}) == {"context_tokens": 8, "tokens": 10,
                                                                           "deep": True}
    assert report.method_options("softcpt", 4, 10, context_init="a photo of a") == {"context_tokens": 4,
                                                                                  "init": "a photo of a"}
    assert report.method_options("v2pt", 4, 10, context_init="a photo of a") == {"tokens": 10}


def test_train_config_takes_its_splits_from_the_notebook_parameters(tmp_path):
    from faceprompt import report

    manifests = {"utkface": str(tmp_path / "u.csv"), "facial_expressions": str(tmp_path / "f.csv")}
    usual = report.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs")
    assert [s.splits for s in usual.train] == [("train",), ("train",)]
    assert [s.splits for s in usual.val] == [("val",), ("val",)]
    unseen = report.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs", datasets=["utkface"],
                                 train_splits=["val"], val_splits=[])
    assert [(Path(s.manifest).name, s.splits) for s in unseen.train] == [("u.csv", ("val",))]
    assert unseen.val == ()  # no validation: every epoch runs
    with pytest.raises(ValueError, match="overlap"):
        report.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs", train_splits=["val"])
    halves = report.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs", train_splits=["val"],
                                 train_part=[0, 0.6], val_part=[0.6, 1])
    assert [(s.splits, s.part) for s in halves.train] == [(("val",), (0.0, 0.6))] * 2
    assert [(s.splits, s.part) for s in halves.val] == [(("val",), (0.6, 1.0))] * 2
    with pytest.raises(ValueError, match=r"val\[0\] .* overlaps train\[0\]"):
        report.train_config("vpt", "tiny-pe", manifests, tmp_path / "runs", train_splits=["val"],
                            train_part=[0, 0.6], val_part=[0.5, 1])


def test_attention_runs_from_other_weights_are_not_reused(tmp_path, tiny_backbones):
    from faceprompt import report

    tower = tiny_backbones["tiny-pe"]
    run = tmp_path / "vpt"
    assert not report._trained_on(run, tower)  # nothing there yet
    run.mkdir()
    (run / "prompts.safetensors").write_bytes(b"")
    for weights, reusable in ((tower.weights_id, True), (None, True), ("local-dir:older-model:0000", False)):
        (run / "config.json").write_text(json.dumps({"backbone": "tiny-pe", "weights": weights}))
        assert report._trained_on(run, tower) is reusable
    (run / "config.json").write_text(json.dumps({"backbone": "tiny-vit", "weights": None}))
    assert not report._trained_on(run, tower)
