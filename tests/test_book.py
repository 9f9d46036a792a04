"""Fast checks of the book: table of contents, notebook sources, profiles, the figure helper."""
from __future__ import annotations

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
    assert {"10_data_prep", "20_zero_shot", "40_evaluate", "45_data_efficiency", "50_attention", "60_demo",
            "70_recorded"} <= executed
    assert any(e.get("glob") == "book/_executed/30_train_*" for e in toc_entries(toc))


def test_method_chapters_cover_every_method():
    chapters = {p.stem for p in (ROOT / "book" / "methods").glob("*.md")}
    assert {"zero_shot", "coop", "softcpt", "vpt", "v2pt", "combinations"} <= chapters


def test_the_notebooks_are_the_pipelines():
    from faceprompt.book.build import NOTEBOOKS as RUN, STAGES

    assert [p.stem for p in NOTEBOOKS] == ["10_data_prep", "20_zero_shot", "30_train", "40_evaluate",
                                          "45_data_efficiency", "50_attention", "60_demo", "70_recorded"]
    assert tuple(p.stem for p in NOTEBOOKS) == RUN
    assert sorted(n for stage in STAGES for n in stage) == sorted(RUN)


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
    from faceprompt.book.build import declared_parameters

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
    from faceprompt.book.methods import trained_methods
    from faceprompt.book.build import STAGES, load_profile, plan

    for name in ("book_default", "book_gpu", "book_real"):
        profile = load_profile(ROOT / "configs" / f"{name}.yaml")
        stages = plan(profile, ROOT)
        assert len(stages) == len(STAGES)
        train_jobs = [j for j in stages[2] if j.notebook == "30_train"]
        assert [j.parameters["method"] for j in train_jobs] == [m for m in profile.methods
                                                                 for _ in profile.method_seeds(m)]
        assert len({j.output for j in train_jobs}) == len(train_jobs)
        assert list(profile.methods) == trained_methods()
    gpu = load_profile(ROOT / "configs" / "book_gpu.yaml", ["backbone=siglip2-b16", "parallel=1",
                                                            "notebooks.30_train.train_config.epochs=2"])
    assert gpu.parameters["backbone"] == "siglip2-b16" and gpu.parallel == 1
    assert gpu.notebooks["30_train"]["train_config"]["epochs"] == 2
    assert gpu.notebooks["30_train"]["train_config"]["batch_size"] == 60
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        load_profile(ROOT / "configs" / "book_gpu.yaml", ["parallel"])
    with pytest.raises(ValueError, match="parallel"):
        load_profile(ROOT / "configs" / "book_gpu.yaml", ["parallel=two"])


def _fake_shared(root: Path, names=("UTKFace", "facial_expressions", "LFW", "FERPlus")) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "x.txt").write_text("x")
    return root


def test_default_profile_uses_real_faces_when_the_shared_data_are_there(tmp_path, monkeypatch):
    from faceprompt.book.build import load_profile, plan

    shared = _fake_shared(tmp_path / "shared")
    monkeypatch.setenv("FACEPROMPT_SHARED_DATA", str(shared))
    monkeypatch.delenv("FACEPROMPT_BOOK_DATA", raising=False)
    profile = load_profile(ROOT / "configs" / "book_default.yaml")
    assert profile.name == "real" and "real faces" in profile.data_source
    assert profile.parameters["backbone"] == "faceclip-tiny"
    roots = {d["name"]: d["root"] for d in profile.parameters["datasets"]}
    assert roots == {"utkface": str(shared / "UTKFace"), "facial_expressions": str(shared / "facial_expressions"),
                     "ferplus": str(shared / "FERPlus")}
    assert profile.parameters["target"] == {"dataset": "ferplus", "task": "emotion"}
    assert all(d.get("seed", 0) == 0 for d in profile.parameters["datasets"])  # faceclip-tiny's split seed
    training = plan(profile, ROOT)[2]
    seeded = [j for j in training if j.parameters.get("method") == "vpt"]
    assert [j.parameters["seed"] for j in seeded] == [0, 1]
    assert [j.output for j in seeded] == ["30_train_vpt", "30_train_vpt-seed1"]
    for method in ("coop", "softcpt"):  # text methods: three seeds at least, visual ones two
        assert profile.method_seeds(method) == (0, 1, 2)
    for method in ("vpt", "vpt-ts", "v2pt", "softcpt+vpt"):
        assert profile.method_seeds(method) == (0, 1)
    # text methods keep the longer schedule; the visual ones the short one the 20-minute build allows
    by_method = {j.parameters["method"]: j.parameters["train_config"] for j in training}
    assert by_method["coop"]["epochs"] == 12 and by_method["coop"]["max_train_samples"] == 1200
    assert by_method["coop"]["class_balance_tasks"] == ["emotion"]  # merged, not replaced
    assert by_method["vpt"]["epochs"] == 5 and by_method["vpt"]["max_train_samples"] == 640
    assert by_method["vpt-ts"]["epochs"] == 4 and by_method["vpt-ts"]["max_val_samples"] == 400
    monkeypatch.setenv("FACEPROMPT_BOOK_DATA", "synthetic")
    assert load_profile(ROOT / "configs" / "book_default.yaml").name == "default"


def test_default_profile_falls_back_to_synthetic_faces(tmp_path, monkeypatch):
    from faceprompt.book.build import load_profile, plan

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
    from faceprompt.book.build import Profile

    with pytest.raises(ValueError, match="not among the profile's methods"):
        Profile.from_dict({"methods": ["vpt"], "seeds": {"coop": [0, 1]}})
    with pytest.raises(ValueError, match="distinct integers"):
        Profile.from_dict({"methods": ["vpt"], "seeds": {"vpt": [0, 0]}})
    assert Profile.from_dict({"methods": ["vpt"], "seeds": {"vpt": [0, 1]}}).method_seeds("vpt") == (0, 1)


# What each profile's 30_train run config holds (the values the profiles gave before they spoke TrainConfig).
PROFILE_RUNS = {
    "book_default": {"coop": (8, 64, 3, None, 0.0, {"context_tokens": 8}),
                     "softcpt+vpt": (8, 64, 3, None, 0.0, {"context_tokens": 8, "tokens": 10}),
                     "v2pt": (8, 64, 3, None, 0.0, {"tokens": 10})},
    "book_gpu": {"softcpt": (50, 60, 7, None, 0.0, {"context_tokens": 16}),
                 "vpt-ts": (50, 60, 7, None, 0.0, {"tokens": 10})},
    "book_real": {"coop": (12, 64, 7, 1200, 0.0, {"context_tokens": 4, "init": "a photo of a"}),
                  "softcpt+vpt": (5, 64, 7, 640, 0.0, {"context_tokens": 4, "init": "a photo of a", "tokens": 10}),
                  "v2pt": (5, 64, 7, 640, 5.0, {"tokens": 10}),
                  "vpt-ts": (4, 64, 7, 640, 0.0, {"tokens": 10})},
}


@pytest.mark.parametrize("name", sorted(PROFILE_RUNS))
def test_every_profiles_train_jobs_make_the_run_configs_it_means(name, tmp_path, monkeypatch):
    """30_train's own call on each job's parameters: a valid TrainConfig, with the profile's schedule and each
    method's share of the shared method_options."""
    from faceprompt.book import runs
    from faceprompt.book.build import load_profile, plan

    monkeypatch.setenv("FACEPROMPT_BOOK_DATA", "synthetic")
    profile = load_profile(ROOT / "configs" / f"{name}.yaml")
    names = [d if isinstance(d, str) else d["name"] for d in profile.parameters["datasets"]]
    manifests = {n: str(tmp_path / n / "manifest.csv") for n in names}
    made = {}
    for job in (j for j in plan(profile, ROOT)[2] if j.notebook == "30_train"):
        p = job.parameters
        made[job.output] = runs.train_config(
            p["method"], "tiny-pe", manifests, tmp_path / "runs", p["train_config"], seed=p.get("seed", 0),
            **{k: p[k] for k in ("train_splits", "val_splits", "train_part", "val_part") if k in p})
    for method, (epochs, batch, patience, samples, anchor, options) in PROFILE_RUNS[name].items():
        cfg = made[f"30_train_{method.replace('+', '_')}"]
        assert (cfg.epochs, cfg.batch_size, cfg.patience, cfg.max_train_samples, cfg.anchor_weight) == \
            (epochs, batch, patience, samples, anchor), method
        assert cfg.method_options == options and cfg.lr == 0.002, method


def test_a_method_can_have_its_own_train_parameters():
    from faceprompt.book.build import Profile, plan

    shared = {"lr": 0.002, "min_lr": 1e-5, "method_options": {"tokens": 4, "context_tokens": 2}}
    profile = Profile.from_dict({
        "methods": ["vpt", "v2pt"], "seeds": {"v2pt": [0, 1]},
        "notebooks": {"30_train": {"train_splits": ["val"], "train_config": shared}},
        "method_parameters": {"v2pt": {"train_config": {"lr": 0.001, "anchor_weight": 5.0,
                                                        "method_options": {"deep": False}}}}})
    jobs = {j.output: j.parameters for j in plan(profile, ROOT)[2] if j.notebook == "30_train"}
    assert jobs["30_train_vpt"]["train_config"] == shared and jobs["30_train_vpt"]["train_splits"] == ["val"]
    for run in ("30_train_v2pt", "30_train_v2pt-seed1"):  # every seed; the shared mappings are merged, not replaced
        assert jobs[run]["train_config"] == {"lr": 0.001, "min_lr": 1e-5, "anchor_weight": 5.0,
                                             "method_options": {"tokens": 4, "context_tokens": 2, "deep": False}}
        assert jobs[run]["train_splits"] == ["val"]
    assert jobs["30_train_v2pt-seed1"]["seed"] == 1
    assert shared["method_options"] == {"tokens": 4, "context_tokens": 2}  # the shared section is left as it was
    with pytest.raises(ValueError, match="not among the profile's methods"):
        Profile.from_dict({"methods": ["vpt"], "method_parameters": {"v2pt": {"train_config": {"lr": 0.1}}}})
    with pytest.raises(ValueError, match="set by the pipeline"):
        Profile.from_dict({"methods": ["vpt"], "method_parameters": {"vpt": {"seed": 3}}})
    with pytest.raises(ValueError, match="not parameters of 30_train"):
        plan(Profile.from_dict({"methods": ["vpt"], "method_parameters": {"vpt": {"epochs": 3}}}), ROOT)


def test_profile_errors_name_the_field(tmp_path):
    from faceprompt.book.build import Profile, load_profile, plan

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
    from faceprompt.book.build import Profile, job_stamp, plan

    first = plan(Profile.from_dict({}), ROOT)[2][0]
    second = plan(Profile.from_dict({"notebooks": {"30_train": {"train_config": {"epochs": 2}}}}), ROOT)[2][0]
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


def test_profile_is_a_config_and_defaults_to_the_registry(tmp_path):
    from faceprompt.book.methods import trained_methods
    from faceprompt.config import Config
    from faceprompt.book.build import Profile, load_profile

    assert issubclass(Profile, Config)
    assert list(Profile.from_dict({}).methods) == trained_methods()
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['paralel'\] for Profile"):
        Profile.from_dict({"paralel": 2})
    with pytest.raises(ValueError, match="'threads' must be an integer"):
        Profile.from_dict({"threads": "two"})
    path = tmp_path / "p.yaml"
    path.write_text("name: small\nparameters: {work_dir: work/x}\n")
    profile = load_profile(path, ["threads=3", "epochs=2", "notebooks.30_train.train_config.lr=0.001"])
    assert (profile.threads, profile.parameters) == (3, {"work_dir": "work/x", "epochs": 2})
    assert profile.notebooks == {"30_train": {"train_config": {"lr": 0.001}}}


def test_a_profile_target_must_be_one_of_its_datasets():
    from faceprompt.book.build import load_profile

    for name in ("book_default", "book_gpu", "book_real"):
        profile = load_profile(ROOT / "configs" / f"{name}.yaml")
        names = [d["name"] for d in profile.parameters["datasets"]]
        assert profile.parameters["target"]["dataset"] in names
    with pytest.raises(ValueError, match="target"):
        load_profile(ROOT / "configs" / "book_gpu.yaml", ["target={dataset: rafdb, task: emotion}"])
