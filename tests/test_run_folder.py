"""A run writes only inside its own folder, one writer at a time, and never over another run."""
from __future__ import annotations

import os
import threading

import pytest

from engine_helpers import quick_config, synthetic_manifest  # noqa: F401
from faceprompt.engine.run_folder import RunFolderLock
from faceprompt.evaluate import evaluate
from faceprompt.lockfile import FolderLock, FolderLockedError
from faceprompt.training.loop import fit, resume_config
from test_errors import error_line, run_cli


def snapshot(folder) -> dict:
    """Every file under ``folder`` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("run_id", ["..", ".", "../../escape", "/abs/path", "a/b", " padded"])
def test_a_run_id_is_one_plain_folder_name(tmp_path, capsys, synthetic_manifest, run_id):
    project = tmp_path / "proj"
    (project / "runs").mkdir(parents=True)
    (project / "config.json").write_text('{"mine": true}')
    (project / "metrics.csv").write_text("mine\n")
    config = tmp_path / "cfg.yaml"
    config.write_text(f"method: zero-shot\nbackbone: tiny-pe\ntrain: [{synthetic_manifest}]\nepochs: 1\n")
    before = snapshot(tmp_path)
    code, _, err = run_cli(capsys, "train", "--config", config, "--set", f"run_dir={project / 'runs'}",
                           "--run-id", run_id)
    assert "run_id" in error_line(code, err, repr(run_id))
    assert snapshot(tmp_path) == before


def test_resume_writes_its_features_inside_the_run(tmp_path, synthetic_manifest):
    cfg = quick_config(synthetic_manifest, tmp_path, epochs=1)
    result = fit(cfg, progress=False)
    elsewhere = tmp_path / "elsewhere"
    stored = result.run_dir / "config.json"
    text = stored.read_text().replace(str(tmp_path / "cache"), str(elsewhere))
    stored.write_text(text)
    resumed = resume_config(result.run_dir)
    assert resumed.cache_dir.startswith(str(result.run_dir))
    fit(resume_config(result.run_dir).__class__.from_dict({**resumed.to_dict(), "epochs": 2}), resume=True,
        progress=False)
    assert not elsewhere.exists()


def test_a_second_writer_of_one_run_is_refused(tmp_path, synthetic_manifest):
    cfg = quick_config(synthetic_manifest, tmp_path, epochs=1)
    with RunFolderLock(cfg.run_path()):
        with pytest.raises(FolderLockedError, match="is being written by pid"):
            fit(cfg, progress=False)
    assert not (cfg.run_path() / "config.json").exists()


def test_two_concurrent_trainings_leave_one_run_and_refuse_the_other(tmp_path, synthetic_manifest):
    outcomes = []

    def train(lr):
        try:
            fit(quick_config(synthetic_manifest, tmp_path, epochs=1, lr=lr), progress=False)
            outcomes.append(("done", lr))
        except (FolderLockedError, ValueError) as err:
            outcomes.append(("refused", str(err)))

    threads = [threading.Thread(target=train, args=(lr,)) for lr in (1e-2, 2e-2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(kind for kind, _ in outcomes) == ["done", "refused"], outcomes


@pytest.mark.parametrize("kept", ["config.json", "prompts.safetensors", "metrics.csv"])
def test_any_run_file_left_means_the_folder_holds_a_run(tmp_path, synthetic_manifest, kept):
    cfg = quick_config(synthetic_manifest, tmp_path, epochs=1)
    result = fit(cfg, progress=False)
    for path in result.run_dir.iterdir():
        if path.name != kept and path.is_file():
            path.unlink()
    before = snapshot(result.run_dir)
    with pytest.raises(ValueError, match=f"already holds a run \\({kept}"):
        fit(quick_config(synthetic_manifest, tmp_path, epochs=1, lr=5e-2), progress=False)
    assert snapshot(result.run_dir) == before


def test_evaluate_refuses_to_write_over_another_run_and_names_its_run(tmp_path, synthetic_manifest):
    run_a = fit(quick_config(synthetic_manifest, tmp_path, epochs=1, run_id="a"), progress=False).run_dir
    run_b = fit(quick_config(synthetic_manifest, tmp_path, epochs=1, run_id="b"), progress=False).run_dir
    before = snapshot(run_b)
    with pytest.raises(ValueError, match="holds another run"):
        evaluate(run_a, out_dir=run_b, progress=False, cache_dir=None)
    assert snapshot(run_b) == before
    result = evaluate(run_a, progress=False, cache_dir=None)
    assert result.summary["run"] == "a"
    for name in ("metrics", "confusion", "fairness", "reliability"):
        text = (result.out_dir / f"{name}.csv").read_text().splitlines()
        assert text[0].startswith("run,") and all(line.startswith("a,") for line in text[1:]), name


def test_a_symlinked_lock_never_writes_through_the_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / ".lock")
    with pytest.raises(FolderLockedError, match="symbolic link"):
        FolderLock(out, "faceprompt prepare").acquire()
    assert victim.read_text() == "precious"


def test_prepare_refuses_a_planted_lock_link(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / ".lock")
    code, _, err = run_cli(capsys, "prepare", "synthetic", "--out", out, "--n", 12, "--size", 32)
    error_line(code, err, ".lock")
    assert victim.read_text() == "precious"


def test_planted_links_in_the_folders_written_are_refused(tmp_path, synthetic_manifest):
    from faceprompt.data.prepare import prepare_dataset

    victim = tmp_path / "victim"
    victim.mkdir()
    for sub in ("crops", "source"):
        out = tmp_path / f"out-{sub}"
        out.mkdir()
        os.symlink(victim, out / sub)
        with pytest.raises(ValueError, match="symbolic link"):
            prepare_dataset("synthetic", None, out, n=12, size=32, workers=1, progress=False)
    run = fit(quick_config(synthetic_manifest, tmp_path, epochs=1), progress=False).run_dir
    os.symlink(victim, run / "eval")
    with pytest.raises(ValueError, match="symbolic link"):
        evaluate(run, progress=False, cache_dir=None)
    assert list(victim.iterdir()) == []


@pytest.mark.parametrize("run_id", ["", "x\ny", "tab\there"])
def test_empty_and_control_character_run_ids_are_refused(tmp_path, capsys, synthetic_manifest, run_id):
    config = tmp_path / "cfg.yaml"
    config.write_text(f"method: zero-shot\nbackbone: tiny-pe\ntrain: [{synthetic_manifest}]\nepochs: 1\n"
                      f"run_dir: {tmp_path / 'runs'}\nrun_id: base\n")
    code, _, err = run_cli(capsys, "train", "--config", config, "--run-id", run_id)
    assert code != 0 and "run_id" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_evaluate_caches_features_in_the_folder_it_writes_to(tmp_path, monkeypatch, capsys, synthetic_manifest):
    from faceprompt.cli import main

    run = fit(quick_config(synthetic_manifest, tmp_path, epochs=1), progress=False).run_dir
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["evaluate", str(run), "--quiet"]) == 0
    assert list(elsewhere.iterdir()) == []
    assert (run / "feature-cache").is_dir()
