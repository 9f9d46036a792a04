"""The ipywidgets demo app: uploads, per-face bars, backbone / run / detector choice, messages for bad files."""
import io
from datetime import datetime, timezone
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import demo_helpers as h  # noqa: E402

from faceprompt.demo.app import DemoApp, build_app, find_runs, voila_command, write_notebook  # noqa: E402
from faceprompt.detect import demo_detector  # noqa: E402
from faceprompt.predict import default_backbone  # noqa: E402


def jpeg(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92, **kwargs)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def upload(app: DemoApp, name: str, data: bytes) -> None:
    """What the browser does: set the FileUpload value (ipywidgets 8 layout)."""
    app.upload.value = ({"name": name, "type": "image/jpeg", "size": len(data), "content": memoryview(data),
                         "last_modified": datetime.now(timezone.utc)},)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs folder: one VPT-TS run on the default backbone, one on another backbone, one broken."""
    from faceprompt.backbones import load_backbone
    from faceprompt.checkpoint import save_prompts
    from faceprompt.prompts import build_model
    from faceprompt.tasks import get_tasks

    root = tmp_path_factory.mktemp("runs")
    backbone = load_backbone(default_backbone())
    save_prompts(build_model("vpt-ts", backbone, get_tasks(None)), root / "vptts-demo")
    other = "tiny-vit" if default_backbone() != "tiny-vit" else "tiny-pe"
    (root / "other").mkdir()
    (root / "other" / "config.json").write_text(json.dumps({"method": "coop", "backbone": other}))
    (root / "other" / "prompts.safetensors").write_bytes(b"")
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json")
    (root / "broken" / "prompts.safetensors").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def app(runs, tmp_path_factory):
    """The app as on a machine where no tuned run ships (the shipped one is tested on its own below)."""
    from faceprompt import predict

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(predict, "SHIPPED_RUN", tmp_path_factory.mktemp("none") / "absent")
        yield build_app(runs_dir=runs)


def test_the_shipped_run_answers_by_default_and_zero_shot_is_offered(shipped, runs):
    app = build_app(runs_dir=runs)
    labels = [label for label, _ in app.run.options]
    assert labels[:2] == [f"{shipped.name} (vpt, shipped)", "zero-shot"]
    assert app.run.value == str(shipped)
    assert app.pipeline().classifier.model.method == "vpt"
    app.run.value = "zero-shot"
    assert app.pipeline().classifier.model.method == "zero-shot"


def test_defaults_and_choices(app, runs):
    assert app.backbone.value == default_backbone()
    assert "tiny-pe" in app.backbone.options and "tiny-vit" in app.backbone.options
    assert app.detector.value == demo_detector()
    # Only runs trained on the chosen backbone are offered; the broken one is skipped.
    assert [label for label, _ in app.run.options] == ["zero-shot", "vptts-demo (vpt-ts)"]
    assert [r.path.name for r in find_runs(runs)] == ["other", "vptts-demo"]
    assert find_runs(runs / "absent") == []
    bundle = app._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the app displays as its widget


def test_upload_shows_annotated_photo_and_bars_per_face(app):
    photo, _ = h.group_photo(2)
    upload(app, "pair.jpg", jpeg(photo))
    assert app.message.startswith("pair.jpg: 2 faces | detect ")
    shown = Image.open(io.BytesIO(app.image.value))
    assert shown.size == photo.size and app.image.layout.display is None
    cards = app.faces.value
    assert cards.count('class="fp-face"') == 2
    for cls in ("female", "30-39", "70+", "happiness", "neutral"):
        assert f">{cls}<" in cards
    assert cards.count("data:image/jpeg;base64,") == 2  # each face's thumbnail


def test_uncertain_labels_are_marked_on_the_cards():
    from faceprompt.demo.app import face_card
    from faceprompt.demo.pipeline import FaceResult
    from faceprompt.predict import TaskPrediction

    predictions = {"gender": TaskPrediction("female", 0.9, {"female": 0.9, "male": 0.1}),
                   "age": TaskPrediction("30-39", 0.4, {"20-29": 0.35, "30-39": 0.4, "40-49": 0.25})}
    doubtful = face_card(0, FaceResult((0, 0, 10, 10), 1.0, predictions, uncertain=["age"]))
    sure = face_card(0, FaceResult((0, 0, 10, 10), 1.0, predictions))
    assert 'class="fp-uncertain"' in doubtful and "uncertain: age" in doubtful and "<b>age ?</b>" in doubtful
    assert "<b>gender</b>" in doubtful
    assert "uncertain" not in sure and "?" not in sure


def test_bad_uploads_show_a_message_and_the_app_keeps_working(app, tmp_path):
    photo, _ = h.group_photo(1)
    bad = {
        "notes.jpg": (b"this is a shopping list, not a photo", "notes.jpg: unreadable image"),
        "empty.jpg": (b"", "empty.jpg: the file is empty"),
        "cut.jpg": (jpeg(photo)[:2000], "cut.jpg: unreadable image"),
        "huge.png": (h.write_huge_png(tmp_path / "huge.png").read_bytes(), "exceeds the limit of 50,000,000"),
    }
    for name, (data, expected) in bad.items():
        upload(app, name, data)
        assert app.message.startswith("Could not process this file: "), app.message
        assert expected in app.message
        assert "Traceback" not in app.status.value and app.faces.value == ""
        assert app.image.layout.display == "none"  # no stale photo under the message
    upload(app, "one.jpg", jpeg(photo))
    assert app.message.startswith("one.jpg: 1 face | detect ")


def test_no_face_message(app):
    upload(app, "sky.png", png(Image.new("RGB", (320, 240), (100, 160, 230))))
    assert "sky.png: no face found in this photo" in app.message
    assert app.faces.value == "" and app.image.layout.display is None  # the photo itself is still shown


def test_exif_grayscale_and_rgba_uploads(app, tmp_path):
    photo, regions = h.group_photo(2)
    rotated = h.write_exif_rotated(tmp_path / "phone.jpg", photo).read_bytes()
    rgba = photo.convert("RGBA")
    rgba.putalpha(200)
    for name, data in [("phone.jpg", rotated), ("gray.jpg", jpeg(photo.convert("L"))), ("rgba.png", png(rgba))]:
        result = app.process(name, data)
        assert result is not None and len(result.faces) == 2, app.message
        assert (result.width, result.height) == (640, 480)
        for region in regions:
            assert sum(h.inside(f.box, region) for f in result.faces) == 1


def test_changing_run_and_detector_reruns_the_last_photo(app, runs):
    photo, _ = h.group_photo(2)
    upload(app, "pair.jpg", jpeg(photo))
    zero_shot = app.faces.value
    app.run.value = str(runs / "vptts-demo")
    assert app.pipeline().classifier.model.method == "vpt-ts"
    assert app.message.startswith("pair.jpg: 2 faces")
    assert app.faces.value != zero_shot  # other prompts, other probabilities
    app.status.value = ""
    app.detector.value = "haar"  # re-runs at once (haar may miss a face the default found)
    assert app.pipeline().detector.name == "haar" and re.match(r"pair\.jpg: (\d faces?|no face found)", app.message)
    app.detector.value = demo_detector()
    app.run.value = "zero-shot"


def test_backbone_that_cannot_load_is_a_message(runs):
    from faceprompt.backbones import BACKBONES, weights_available

    missing = next((n for n in BACKBONES if weights_available(n) == "missing"), None)
    if missing is None:
        pytest.skip("every backbone's weights are on this machine")
    app = build_app(backbone=missing, runs_dir=runs)
    app.process("one.png", png(Image.new("RGB", (64, 64))))
    assert app.message.startswith("Could not process this file: no weights for backbone")


def test_voila_notebook_and_command(tmp_path):
    path = write_notebook(tmp_path / "demo.ipynb", backbone="tiny-pe", runs_dir=None)
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert code == ["from faceprompt.demo.app import build_app\n\nbuild_app(backbone='tiny-pe')"]
    command = voila_command(path, 9999)
    assert "--Voila.ip=127.0.0.1" in command and "--port=9999" in command and str(path) in command


def test_serving_on_a_busy_port_is_refused_before_anything_starts(monkeypatch):
    import socket
    import subprocess

    from faceprompt.demo import app as app_module

    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=f"--port {port}: already in use"):
            app_module.serve(port=port, runs_dir=None)
    assert not started
