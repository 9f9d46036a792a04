"""The shipped tuned run answers by default; --zero-shot gives the bare model; the output names the model."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from faceprompt import predict
from faceprompt.cli import main


@pytest.fixture
def face_image(tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(path)
    return path


def test_the_shipped_run_is_the_default_and_zero_shot_is_one_flag_away(shipped):
    tuned = predict.FaceClassifier.load()
    assert tuned.model.method == "vpt" and tuned.run_dir == shipped
    assert tuned.describe()["prompts"] == f"shipped: {shipped.name}"
    bare = predict.FaceClassifier.load(zero_shot=True)
    assert bare.model.method == "zero-shot" and bare.run_dir is None
    assert bare.describe()["prompts"].startswith("zero-shot")
    # Other backbones or other weights never get the embedded model's prompts.
    assert predict.default_run("tiny-pe") is None
    assert predict.default_run("faceclip-tiny", weights="random") is None
    with pytest.raises(ValueError, match="--zero-shot"):
        predict.FaceClassifier.load(run_dir=shipped, zero_shot=True)


def test_no_shipped_run_means_zero_shot(tmp_path, monkeypatch):
    monkeypatch.setattr(predict, "SHIPPED_RUN", tmp_path / "absent")
    assert predict.default_run() is None
    assert predict.FaceClassifier.load().model.method == "zero-shot"


def test_predict_json_names_the_model_and_the_crop_really_used(shipped, face_image, capsys):
    assert main(["predict", str(face_image)]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["model"]["method"] == "vpt" and tuned["model"]["prompts"] == f"shipped: {shipped.name}"
    assert tuned["model"]["backbone"] == "faceclip-tiny" and tuned["model"]["weights"]
    # Random pixels hold no landmarks: the aligned crop falls back, and the output says so.
    assert tuned["crop"]["asked"] == "aligned" and tuned["crop"]["used"] != "aligned" and tuned["crop"]["why"]
    assert main(["predict", str(face_image), "--zero-shot"]) == 0
    bare = json.loads(capsys.readouterr().out)
    assert bare["model"]["method"] == "zero-shot" and bare["predictions"] != tuned["predictions"]


def test_evaluate_a_manifest_without_a_run_uses_the_shipped_run(shipped, tmp_path, capsys):
    from faceprompt.data.synthetic_faces import make_synthetic_dataset

    manifest = make_synthetic_dataset(tmp_path / "synthetic", n=24, size=80, seed=0)
    out = tmp_path / "eval-out"
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(out), "--quiet", "--cache-dir", ""]) == 0
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert summary["method"] == "vpt" and summary["run"] == shipped.name
    assert not (shipped / "eval").exists()  # the shipped run is read, never written


def test_the_predict_path_on_the_embedded_model_never_imports_transformers():
    import subprocess
    import sys

    code = ("import sys; import faceprompt.commands.predict; from faceprompt.predict import FaceClassifier; "
            "FaceClassifier.load(); print('transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_the_predict_path_defers_the_compiler_and_it_still_loads_when_asked():
    """torchvision and timm touch ``torch._dynamo`` at import; the predict path imports it only when used, and
    then the real one comes: ``is_compile_supported`` answers and ``torch.compile`` compiles."""
    import subprocess
    import sys

    code = ("import sys, torch; import faceprompt.commands.predict; from faceprompt.predict import FaceClassifier; "
            "FaceClassifier.load(); print('torch._dynamo' in sys.modules); "
            "print(sys.modules['torchvision.ops.roi_align'].is_compile_supported('cpu')); "
            "import torch._dynamo; print(hasattr(torch._dynamo, 'optimize') and 'torch._dynamo' in sys.modules); "
            "print(torch.compile(lambda x: x * 2, backend='eager')(torch.ones(2)).tolist())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-4:] == ["False", "True", "True", "[2.0, 2.0]"]
