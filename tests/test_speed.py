"""The compiled image path and the static-shape batch path give the eager path's numbers."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine_helpers import quick_config, synthetic_manifest  # noqa: F401
from faceprompt.backbones import load_backbone
from faceprompt.training.losses import multitask_loss
from faceprompt.predict import FaceClassifier, compile_mode, static_batch_size
from faceprompt.prompts import build_model

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")


def _step(model, images, labels):
    """Logits and the prompts' gradient of one training step."""
    model.zero_grad(set_to_none=True)
    out = model(images)
    multitask_loss(out.logits, labels).total.backward()
    return {t: v.detach() for t, v in out.logits.items()}, [p.grad.clone() for p in model.trainable_parameters()]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-vit", "tiny-pe"])
def test_compiled_image_path_gives_eager_logits_and_gradients(name):
    backbone = load_backbone(name)
    torch.manual_seed(0)
    model = build_model("vpt", backbone, None, {"deep": True}).train()
    images = torch.randn(3, 3, backbone.image_size, backbone.image_size)
    labels = {t.name: torch.randint(0, t.num_classes, (3,)) for t in model.tasks}
    eager_logits, eager_grads = _step(model, images, labels)
    backbone.compile_image_path()
    compiled_logits, compiled_grads = _step(model, images, labels)
    for task, logits in eager_logits.items():
        torch.testing.assert_close(compiled_logits[task], logits, rtol=1e-4, atol=1e-4)
    for compiled, eager in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=1e-6)
    with torch.no_grad():
        zero_shot = build_model("zero-shot", backbone, None).eval()
        compiled = zero_shot(images).logits
        backbone.compile_image_path("off")
        for task, logits in zero_shot(images).logits.items():
            torch.testing.assert_close(compiled[task], logits, rtol=1e-4, atol=1e-4)


def test_compile_modes_follow_the_flags_and_cuda_graphs_refuse_a_cpu(tiny_backbones):
    assert [compile_mode(), compile_mode(True), compile_mode(False, True)] == ["off", "default", "reduce-overhead"]
    with pytest.raises(ValueError, match="CUDA device"):
        load_backbone("tiny-vit").compile_image_path("reduce-overhead")
    with pytest.raises(ValueError, match="choose from"):
        load_backbone("tiny-vit").compile_image_path("fast")


def test_static_batches_pad_to_a_power_of_two_and_give_the_unpadded_logits(tiny_backbones):
    assert [static_batch_size(n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]
    classifier = FaceClassifier.load(tiny_backbones["tiny-pe"])
    images = torch.randn(3, 3, 64, 64)
    seen = []
    model = classifier.model
    handle = model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    try:
        with torch.no_grad():
            plain = classifier.logits(images)
            classifier.static_shapes = True
            padded = classifier.logits(images)
    finally:
        handle.remove()
    assert seen == [3, 4]
    for task, logits in plain.items():
        assert padded[task].shape == logits.shape
        torch.testing.assert_close(padded[task], logits, rtol=1e-5, atol=1e-6)


@needs_cuda
@pytest.mark.parametrize("name", ["tiny-vit", "tiny-pe"])
def test_cuda_graph_batch_one_path_gives_eager_predictions(name):
    backbone = load_backbone(name, device="cuda")
    eager = FaceClassifier.load(backbone)
    images = torch.randn(1, 3, backbone.image_size, backbone.image_size, device="cuda")
    with torch.no_grad():
        reference = eager.logits(images)
        static = FaceClassifier(eager.model, compile="reduce-overhead")
        for _ in range(3):  # warm-up, capture, replay
            logits = static.logits(images)
    for task, values in reference.items():
        torch.testing.assert_close(logits[task], values, rtol=1e-3, atol=1e-4)


# --- benchmarks/gpu_checks.sh ---------------------------------------------------------------------------

GPU_CHECKS = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_checks.sh"


def test_gpu_checks_script_is_valid_bash():
    done = subprocess.run(["bash", "-n", str(GPU_CHECKS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_every_gpu_check_command_accepts_its_arguments(tmp_path):
    """The dry run hands every command its real arguments (`faceprompt bench --dry-run`, pytest's collection)."""
    env = {**os.environ, "GPU_CHECKS_DRY_RUN": "1", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(GPU_CHECKS), str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bad arguments" not in done.stdout
    steps = [line.split()[-1] for line in done.stdout.splitlines() if line.startswith("=== check ")]
    assert {"cuda_tests", "infer_pe_core_b16_graphs", "train_l14_eager", "train_l14_compiled"} <= set(steps)
    assert done.stdout.count("would time") == len(steps) - 2  # every step but the tests and pretraining


# --- --compile reaches the image path of every command ------------------------------------------------

@pytest.fixture
def compile_calls(monkeypatch):
    """Calls of ``Backbone.compile_image_path`` by mode, the path left eager (compiling takes a minute here)."""
    from faceprompt.backbones import Backbone

    calls = []
    monkeypatch.setattr(Backbone, "compile_image_path", lambda self, mode="default": calls.append(mode) or self)
    return calls


def test_train_compile_flag_compiles_the_image_path(synthetic_manifest, tmp_path, compile_calls):  # noqa: F811
    import dataclasses
    import json

    from faceprompt.cli import main as cli

    cfg = dataclasses.replace(quick_config(synthetic_manifest, tmp_path, method="vpt", method_options={"tokens": 2}),
                              epochs=1)
    config_file = tmp_path / "train.json"
    config_file.write_text(json.dumps(cfg.to_dict()))
    assert cli(["train", "--config", str(config_file), "--compile", "--quiet"]) == 0
    assert compile_calls == ["default"]
    saved = json.loads((tmp_path / "runs" / "run" / "config.json").read_text())
    assert saved["train_config"]["compile"] is True


def test_predict_compile_and_static_flags(tmp_path, compile_calls, capsys):
    from PIL import Image

    from faceprompt.cli import main as cli

    face = tmp_path / "face.png"
    Image.new("RGB", (96, 96), (120, 100, 90)).save(face)
    assert cli(["predict", str(face), "--backbone", "tiny-pe", "--crop", "box", "--compile"]) == 0
    assert compile_calls == ["default"]
    assert cli(["predict", str(face), "--backbone", "tiny-pe", "--crop", "box", "--static"]) == 0
    assert compile_calls == ["default", "reduce-overhead"]
