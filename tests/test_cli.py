"""`faceprompt` commands, run in-process through faceprompt.cli.main with captured output."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from faceprompt.backbones import BACKBONES, count_parameters_meta
from faceprompt.checkpoint import save_prompts
from faceprompt.cli import main
from faceprompt.predict import FaceClassifier, as_json
from faceprompt.prompts import added_parameters, build_model, list_methods
from faceprompt.tasks import TASKS


@pytest.fixture
def face_image(tmp_path):
    """A small RGB image drawn at run time (the classifier resizes it to the tower's input)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "face.png"
    Image.fromarray(rng.integers(0, 256, (80, 72, 3), dtype=np.uint8)).save(path)
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_and_unknown_command(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "backbones" in out and "predict" in out
    code, _, err = run_cli(capsys, "no-such-command")
    assert code == 2 and "unknown command" in err


def test_backbones_lists_every_backbone_with_its_parameters(capsys):
    code, out, _ = run_cli(capsys, "backbones", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(BACKBONES)
    for name, row in rows.items():
        assert row["family"] == BACKBONES[name].family
        assert row["params_total_M"] > 0 and row["params_vision_M"] > 0 and row["params_text_M"] > 0
    for name in ("tiny-pe", "siglip2-b16"):  # counting is ~0.5 s a backbone: check two against the source
        counts = count_parameters_meta(name)
        assert rows[name]["params_total_M"] == round(counts["total"] / 1e6, 1)
        assert rows[name]["params_vision_M"] == round(counts["vision"] / 1e6, 1)
    assert rows["tiny-pe"]["weights"] == "random init"
    assert rows["pe-core-b16"]["params_total_M"] > 100


def test_backbones_table_has_a_row_per_backbone(capsys, monkeypatch):
    # The table prints what backbone_rows() returns: reuse one fake row set instead of counting again.
    import faceprompt.commands.backbones as command

    fake = [{"name": n, "family": s.family, "image_size": 64, "params_total_M": 1.5, "params_vision_M": 1.0,
             "params_text_M": 0.5, "weights": "random init", "description": ""} for n, s in BACKBONES.items()]
    monkeypatch.setattr(command, "backbone_rows", lambda: fake)
    code, out, _ = run_cli(capsys, "backbones")
    assert code == 0
    lines = out.strip().splitlines()[2:]
    assert [line.split()[0] for line in lines] == list(BACKBONES)
    assert all("1.5" in line for line in lines)


def test_params_json_matches_added_parameters(capsys, tiny_backbones):
    code, out, _ = run_cli(capsys, "params", "--backbone", "tiny-pe", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["method"] for r in rows] == [*list_methods(), "softcpt+vpt"]
    backbone = tiny_backbones["tiny-pe"]
    for row in rows:
        assert row["backbone"] == "tiny-pe"
        assert row["added"] == added_parameters(build_model(row["method"], backbone))
        assert row["backbone_params"] == sum(p.numel() for p in backbone.parameters())


def test_params_options_reach_the_method(capsys, tiny_backbones):
    code, out, _ = run_cli(capsys, "params", "--backbone", "tiny-vit", "--method", "vpt", "--option", "tokens=3",
                           "--option", "deep=true", "--json")
    assert code == 0
    [row] = json.loads(out)
    assert row["added"] == 3 * 64 * 2


def test_params_options_go_to_the_methods_that_declare_them(capsys, tiny_backbones):
    code, out, _ = run_cli(capsys, "params", "--backbone", "tiny-pe", "--method", "zero-shot", "coop", "vpt",
                           "--option", "tokens=3", "--option", "init=a photo of a", "--json")
    assert code == 0
    added = {r["method"]: r["added"] for r in json.loads(out)}
    assert added == {"zero-shot": 0, "coop": 3 * 16 * 64, "vpt": 3 * 64}


def test_params_bad_option_is_one_clear_line(capsys):
    code, _, err = run_cli(capsys, "params", "--backbone", "tiny-vit", "--method", "vpt", "--option", "tokenz=3")
    assert code == 1
    assert "tokenz" in err and "Traceback" not in err


def check_predictions(predictions: dict) -> None:
    assert set(predictions) == set(TASKS)
    for task, p in predictions.items():
        assert list(p["probabilities"]) == list(TASKS[task].classes)
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
        assert p["confidence"] == p["probabilities"][p["label"]]


def test_predict_prints_json_with_three_tasks(capsys, face_image):
    code, out, _ = run_cli(capsys, "predict", str(face_image), "--backbone", "tiny-pe")
    assert code == 0
    result = json.loads(out)
    assert (result["backbone"], result["method"]) == ("tiny-pe", "zero-shot")
    check_predictions(result["predictions"])


def test_predict_with_a_trained_run_matches_the_model(capsys, face_image, tiny_backbones, tmp_path):
    model = build_model("vpt", tiny_backbones["tiny-pe"], config={"tokens": 2})
    with torch.no_grad():
        model.visual.prompts.mul_(5.0)  # far from the initial prompts
    save_prompts(model, tmp_path / "run")
    expected = as_json(FaceClassifier(model).predict_file(face_image))

    code, out, _ = run_cli(capsys, "predict", str(face_image), "--backbone", "tiny-pe",
                           "--prompts", str(tmp_path / "run"))
    assert code == 0
    result = json.loads(out)
    assert result["method"] == "vpt"
    check_predictions(result["predictions"])
    assert result["predictions"] == expected


def test_predict_without_weights_fails_fast_with_instructions(capsys, face_image):
    t0 = time.perf_counter()
    code, out, err = run_cli(capsys, "predict", str(face_image), "--backbone", "pe-core-b16")
    assert time.perf_counter() - t0 < 5.0
    assert code == 1 and out == ""
    assert "pe-core-b16" in err and "weights=" in err and "Traceback" not in err


def test_predict_missing_image_is_one_clear_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "predict", str(tmp_path / "absent.jpg"), "--backbone", "tiny-pe")
    assert code == 1
    assert "absent.jpg" in err and "Traceback" not in err
