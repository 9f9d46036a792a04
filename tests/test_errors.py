"""Every command answers a user's mistake with one line on stderr naming the file or option, a non-zero exit
and no traceback; a programming error keeps its traceback."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from faceprompt.checkpoint import CONFIG_FILE, PROMPTS_FILE, save_prompts
from faceprompt.cli import COMMANDS, main
from faceprompt.data.manifest import write_manifest
from faceprompt.prompts import build_model


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code: int, err: str, *names) -> str:
    """The one stderr line of a failed command; asserts it names every one of ``names``."""
    assert code not in (0, None), err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for name in names:
        assert str(name) in lines[0], lines[0]
    return lines[0]


def face(path, size=(48, 48), seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def run_dir(tiny_backbones, tmp_path):
    """A vpt run on tiny-pe."""
    return save_prompts(build_model("vpt", tiny_backbones["tiny-pe"], config={"tokens": 2}), tmp_path / "run")


@pytest.fixture
def manifest(tmp_path):
    """Four labelled 48 px faces in the test split."""
    rows = [{"path": str(face(tmp_path / f"f{i}.png", seed=i)), "dataset": "tiny", "split": "test",
             "gender": ("male", "female")[i % 2], "age": str(20 + i), "age_bin": "20-29"} for i in range(4)]
    return write_manifest(rows, tmp_path / "manifest.csv")


# --- one bad argument per command ------------------------------------------------------------------

def corrupt_prompts(run):
    (run / PROMPTS_FILE).write_bytes(b"")
    return run


BAD_ARGUMENTS = {
    "backbones": (lambda tmp, run: ["--json", "--colour"], ["--colour"]),
    "predict": (lambda tmp, run: [face(tmp / "a.png"), "--prompts", corrupt_prompts(run)],
                [PROMPTS_FILE, "retrain"]),
    "params": (lambda tmp, run: ["--backbone", "no-such-tower"], ["no-such-tower"]),
    "prepare": (lambda tmp, run: ["utkface", "--root", tmp / "no-utk", "--out", tmp / "out"], ["no-utk"]),
    "train": (lambda tmp, run: ["--config", tmp / "absent.yaml"], ["absent.yaml"]),
    "evaluate": (lambda tmp, run: [run, "--batch-size", "0"], ["--batch-size"]),
    "bench": (lambda tmp, run: ["--backbone", "no-such-tower"], ["no-such-tower"]),
    "demo": (lambda tmp, run: [tmp / "notes.jpg", "--out", tmp / "out"], ["notes.jpg"]),
    "pretrain": (lambda tmp, run: ["--config", tmp / "absent.yaml"], ["absent.yaml"]),
}


def test_every_command_has_a_bad_argument_case():
    assert set(BAD_ARGUMENTS) == set(COMMANDS)


@pytest.mark.parametrize("command", list(BAD_ARGUMENTS))
def test_a_bad_argument_is_one_line_naming_it(command, capsys, tmp_path, run_dir):
    (tmp_path / "notes.jpg").write_text("a text file with an image's name")
    make, names = BAD_ARGUMENTS[command]
    code, out, err = run_cli(capsys, command, *make(tmp_path, run_dir))
    assert error_line(code, err, *names).startswith(f"faceprompt {command}: error:")
    assert not (tmp_path / "out").exists()  # nothing half-made


def test_python_m_faceprompt_prints_one_line_not_a_traceback(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("epochs: [1,\n")  # a YAML syntax error
    done = subprocess.run([sys.executable, "-m", "faceprompt", "train", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert error_line(done.returncode, done.stderr, "train.yaml")


def test_a_programming_error_keeps_its_traceback(monkeypatch):
    import faceprompt.commands.backbones as command

    def broken(args):
        raise TypeError("a bug, not a user's mistake")

    monkeypatch.setattr(command, "run", broken)
    with pytest.raises(TypeError):
        main(["backbones"])


@pytest.mark.parametrize("error, expected", [
    (IsADirectoryError(21, "Is a directory", "/data/run/config.json"), "/data/run/config.json: Is a directory"),
    (PermissionError(13, "Permission denied", "/data/m.csv"), "/data/m.csv: Permission denied"),
    (MemoryError(), "out of memory; try a smaller --batch-size"),
    (KeyError("train"), "error: train"),
])
def test_library_errors_print_one_line_naming_the_file(monkeypatch, capsys, error, expected):
    import faceprompt.commands.backbones as command

    def failing(args):
        raise error

    monkeypatch.setattr(command, "run", failing)
    code, _, err = run_cli(capsys, "backbones")
    assert code == 1 and expected in error_line(code, err)


def test_a_safetensors_error_is_one_line(monkeypatch, capsys, tmp_path):
    from safetensors.torch import load_file

    import faceprompt.commands.backbones as command

    (tmp_path / "w.safetensors").write_bytes(b"\x00" * 3)
    monkeypatch.setattr(command, "run", lambda args: load_file(str(tmp_path / "w.safetensors")))
    code, _, err = run_cli(capsys, "backbones")
    assert "header" in error_line(code, err)


# --- predict ----------------------------------------------------------------------------------------

def empty_file(folder):
    (folder / "empty.png").write_bytes(b"")
    return folder / "empty.png"


@pytest.mark.parametrize("make, names", [
    (lambda tmp: tmp, ["is a folder, not an image file"]),
    (empty_file, ["empty.png", "unreadable"]),
    (lambda tmp: face(tmp / "dot.png", size=(1, 1)), ["dot.png", "1x1", "too small"]),
    (lambda tmp: face(tmp / "strip.png", size=(300, 8)), ["strip.png", "300x8", "too small"]),
], ids=["folder", "empty", "1x1", "thin"])
def test_predict_refuses_what_is_not_a_face_image(capsys, tmp_path, make, names):
    code, out, err = run_cli(capsys, "predict", make(tmp_path), "--backbone", "tiny-pe")
    error_line(code, err, *names)
    assert out == ""


def test_predict_refuses_a_run_of_another_backbone_before_loading_one(capsys, tmp_path, run_dir, monkeypatch):
    import faceprompt.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "load_backbone", lambda *a, **k: pytest.fail("loaded a backbone"))
    code, _, err = run_cli(capsys, "predict", face(tmp_path / "a.png"), "--backbone", "tiny-vit",
                           "--prompts", run_dir)
    error_line(code, err, "'tiny-pe'", "'tiny-vit'", "fixed")


@pytest.mark.parametrize("config", ["", "[1, 2]", '{"method": "vpt"}', "{not json"],
                         ids=["empty", "list", "fields-missing", "bad-json"])
def test_predict_names_a_broken_run_config(capsys, tmp_path, run_dir, config):
    (run_dir / CONFIG_FILE).write_text(config)
    code, _, err = run_cli(capsys, "predict", face(tmp_path / "a.png"), "--prompts", run_dir)
    error_line(code, err, CONFIG_FILE)


def test_predict_names_a_run_folder_without_its_files(capsys, tmp_path):
    (tmp_path / "empty-run").mkdir()
    code, _, err = run_cli(capsys, "predict", face(tmp_path / "a.png"), "--prompts", tmp_path / "empty-run")
    error_line(code, err, "empty-run/config.json")
    (tmp_path / "r2").mkdir()
    (tmp_path / "r2" / CONFIG_FILE).mkdir()  # a folder where the file should be
    code, _, err = run_cli(capsys, "predict", face(tmp_path / "a.png"), "--prompts", tmp_path / "r2")
    error_line(code, err, "r2/config.json")


def test_predict_takes_the_prompts_file_itself(capsys, tmp_path, run_dir):
    code, out, err = run_cli(capsys, "predict", face(tmp_path / "a.png"), "--prompts", run_dir / PROMPTS_FILE)
    assert code == 0 and '"method": "vpt"' in out


# --- evaluate ---------------------------------------------------------------------------------------

def evaluate(capsys, *argv):
    return run_cli(capsys, "evaluate", *argv, "--quiet", "--cache-dir", "")


def test_evaluate_refuses_a_backbone_other_than_the_runs(capsys, run_dir, manifest):
    code, _, err = evaluate(capsys, run_dir, "--manifest", manifest, "--backbone", "tiny-vit")
    error_line(code, err, "'tiny-vit'", "'tiny-pe'", "fixed")
    assert not (run_dir / "eval").exists()
    code, out, _ = evaluate(capsys, run_dir, "--manifest", manifest, "--backbone", "tiny-pe")  # its own: fine
    assert code == 0 and "vpt on tiny-pe" in out


def test_evaluate_refuses_tasks_other_than_the_runs(capsys, run_dir, manifest):
    code, _, err = evaluate(capsys, run_dir, "--manifest", manifest, "--tasks", "gender")
    error_line(code, err, "tasks")


def test_evaluate_with_a_huge_batch_size_runs(capsys, run_dir, manifest):
    code, out, err = evaluate(capsys, run_dir, "--manifest", manifest, "--batch-size", str(10**12))
    assert code == 0, err
    assert "tables in" in out


@pytest.mark.parametrize("option, value", [("--batch-size", "-3"), ("--batch-size", "many"),
                                           ("--device", "toaster")])
def test_evaluate_refuses_bad_option_values_when_parsing(capsys, run_dir, option, value):
    code, _, err = evaluate(capsys, run_dir, option, value)
    assert code == 2
    error_line(code, err, option, value)


@pytest.mark.parametrize("content, names", [
    (b"", ["manifest", "not a readable CSV"]),
    (b"\xff\xfe\x00\x81binary", ["manifest", "not a text CSV"]),
    (b"path,dataset\na.png,x\n", ["manifest", "missing column"]),
    (b"path,dataset\na.png,x\nb.png,y,z,w\n", ["manifest", "not a readable CSV", "line 3"]),
], ids=["empty", "binary", "wrong-columns", "ragged"])
def test_evaluate_names_an_unreadable_manifest(capsys, tmp_path, run_dir, content, names):
    (tmp_path / "bad.csv").write_bytes(content)
    code, _, err = evaluate(capsys, run_dir, "--manifest", tmp_path / "bad.csv")
    error_line(code, err, "bad.csv", *names)


def test_evaluate_names_a_folder_given_as_manifest(capsys, tmp_path, run_dir):
    code, _, err = evaluate(capsys, run_dir, "--manifest", tmp_path)
    error_line(code, err, str(tmp_path), "is a folder; give its manifest.csv")


def test_evaluate_refuses_an_out_that_is_a_file(capsys, tmp_path, run_dir, manifest):
    (tmp_path / "out.txt").write_text("")
    code, _, err = evaluate(capsys, run_dir, "--manifest", manifest, "--out", tmp_path / "out.txt")
    error_line(code, err, "out.txt", "not a folder")


@pytest.mark.parametrize("spoil, names", [
    (lambda p: p.unlink(), ["f2.png", "does not exist"]),
    (lambda p: face(p, size=(1, 1)), ["f2.png", "1x1", "too small"]),
    (lambda p: p.write_text("not an image"), ["f2.png", "unreadable"]),
], ids=["missing", "1x1", "not-an-image"])
def test_evaluate_checks_every_image_before_loading_the_model(capsys, tmp_path, run_dir, manifest, spoil, names,
                                                              monkeypatch):
    import faceprompt.evaluate as module

    spoil(tmp_path / "f2.png")
    monkeypatch.setattr(module, "load_prompts", lambda *a, **k: pytest.fail("loaded the model"))
    code, _, err = evaluate(capsys, run_dir, "--manifest", manifest)
    error_line(code, err, "manifest.csv", *names)


def test_evaluate_names_a_corrupt_prompts_file(capsys, run_dir, manifest):
    (run_dir / PROMPTS_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    code, _, err = evaluate(capsys, run_dir, "--manifest", manifest)
    error_line(code, err, PROMPTS_FILE, "retrain")


def test_evaluate_names_a_run_config_with_a_wrong_train_section(capsys, run_dir):
    import json

    config = json.loads((run_dir / CONFIG_FILE).read_text())
    (run_dir / CONFIG_FILE).write_text(json.dumps({**config, "train_config": {"train": [{"splits": ["train"]}]}}))
    code, _, err = evaluate(capsys, run_dir)
    error_line(code, err, CONFIG_FILE, "train_config.train[0]")


@pytest.mark.parametrize("change", [{"method": "co-op"}, {"tasks": {"height": ["short", "tall"]}},
                                    {"method_config": {"tokens": -1}}], ids=["method", "task", "option"])
def test_evaluate_names_the_run_config_of_an_unknown_method_task_or_option(capsys, run_dir, manifest, change):
    import json

    config = json.loads((run_dir / CONFIG_FILE).read_text())
    (run_dir / CONFIG_FILE).write_text(json.dumps({**config, **change}))
    code, _, err = evaluate(capsys, run_dir, "--manifest", manifest)
    error_line(code, err, CONFIG_FILE)


def test_zero_shot_evaluation_never_replaces_a_trained_run(capsys, run_dir, manifest):
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    code, _, err = evaluate(capsys, "--zero-shot", "--backbone", "tiny-pe", "--manifest", manifest, "--out", run_dir)
    error_line(code, err, str(run_dir), "vpt", "choose another folder")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    zero = run_dir.parent / "zero"
    for _ in range(2):  # a zero-shot folder may be evaluated again
        code, out, err = evaluate(capsys, "--zero-shot", "--backbone", "tiny-pe", "--manifest", manifest,
                                  "--out", zero)
        assert code == 0, err


def test_evaluate_takes_the_prompts_file_for_its_run(capsys, run_dir, manifest):
    code, _, err = evaluate(capsys, run_dir / PROMPTS_FILE, "--manifest", manifest)
    assert code == 0, err
    assert (run_dir / "eval" / "metrics.csv").is_file()


def test_evaluate_refuses_a_manifest_without_labels_for_the_runs_tasks(capsys, tmp_path, run_dir):
    rows = [{"path": str(face(tmp_path / f"e{i}.png")), "dataset": "d", "split": "test", "race": "x"} for i in range(2)]
    code, out, err = evaluate(capsys, run_dir, "--manifest", write_manifest(rows, tmp_path / "unlabelled.csv"))
    error_line(code, err, "unlabelled.csv", "nothing to evaluate")
    assert not (run_dir / "eval").exists()


def test_zero_shot_on_a_bad_manifest_leaves_no_folder_behind(capsys, tmp_path):
    face(tmp_path / "f.png")
    code, _, err = evaluate(capsys, "--zero-shot", "--backbone", "tiny-pe", "--manifest", tmp_path / "f.png",
                            "--out", tmp_path / "zs")
    error_line(code, err, "f.png", "not a text CSV")
    assert not (tmp_path / "zs").exists()


# --- demo -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value", [("--max-faces", "0"), ("--max-frames", "-1"), ("--margin", "-0.1"),
                                           ("--margin", "1e9"), ("--margin", "nan"), ("--threads", "0"),
                                           ("--port", "70000"), ("--webcam", "-2")])
def test_demo_refuses_bad_sizes_and_counts_when_parsing(capsys, tmp_path, option, value):
    code, _, err = run_cli(capsys, "demo", face(tmp_path / "a.png"), "--out", tmp_path / "out", option, value)
    assert code == 2
    error_line(code, err, option, repr(value))
    assert not (tmp_path / "out").exists()


def test_demo_names_a_corrupt_prompts_file(capsys, tmp_path, run_dir):
    corrupt_prompts(run_dir)
    code, _, err = run_cli(capsys, "demo", face(tmp_path / "a.png"), "--out", tmp_path / "out",
                           "--prompts", run_dir)
    error_line(code, err, PROMPTS_FILE, "retrain")


def test_an_old_prompts_file_warns_in_one_line(capsys, tmp_path, run_dir):
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(run_dir / PROMPTS_FILE)), str(run_dir / PROMPTS_FILE))  # no identity metadata
    code, out, err = run_cli(capsys, "predict", face(tmp_path / "a.png"), "--prompts", run_dir)
    assert code == 0 and '"method": "vpt"' in out
    line = error_line(1, err, PROMPTS_FILE, "no identity metadata", "retrain")
    assert line.startswith("faceprompt predict: warning:")


def test_demo_never_writes_over_its_input(capsys, tmp_path):
    photo = face(tmp_path / "photo.jpg", size=(64, 64))
    original = photo.read_bytes()
    code, _, err = run_cli(capsys, "demo", photo, "--out", tmp_path)  # would write tmp_path/photo.jpg
    error_line(code, err, "photo.jpg", "replace the input")
    code, _, err = run_cli(capsys, "demo", tmp_path, "--out", tmp_path)  # a folder into itself
    error_line(code, err, str(tmp_path), "replace the input")
    assert photo.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]


@pytest.mark.parametrize("content", ["text", "pickle"])
def test_predict_with_a_file_that_is_no_weights_is_one_line(tmp_path, capsys, content):
    import pickle

    image = tmp_path / "face.png"
    face(image, (64, 64))
    weights = tmp_path / ("passwd" if content == "text" else "evil.pt")
    if content == "text":
        weights.write_text("root:x:0:0:root:/root:/bin/bash\n" * 20)
    else:
        weights.write_bytes(pickle.dumps({"state_dict": ZeroDivisionError("an object, not a tensor")}))
    code, _, err = run_cli(capsys, "predict", image, "--backbone", "tiny-pe", "--weights", weights)
    error_line(code, err, str(weights), "can't be loaded")


@pytest.mark.parametrize("argv, names", [
    (["bench", "--backbone", "tiny-pe", "--dry-run", "--json", "/nonexistent/x.json"], ["/nonexistent", "create"]),
    (["bench", "--backbone", "tiny-pe", "--epoch-cache", "--images", "0", "--dry-run"], ["--images", "'0'"]),
    (["bench", "--backbone", "tiny-pe", "--peak-tflops", "-1", "--dry-run"], ["--peak-tflops", "'-1'"]),
    (["params", "--backbone", "pe-core-b16", "--method", "coop", "--set", "context_tokens=1000"],
     ["1000 context tokens", "32-token"]),
    (["params", "--backbone", "pe-core-b16", "--method", "vpt", "--set", "tokens=100000000"],
     ["'tokens' must be from 1 to 1024"]),
])
def test_bench_and_params_refuse_what_could_not_run_before_any_work(capsys, argv, names):
    code, _, err = run_cli(capsys, *argv)
    error_line(code, err, *names)
