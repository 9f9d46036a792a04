"""BlazeFace as the demo's detector: tiles for small faces, the face-mesh second look, the dlib fallback."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import demo_helpers as h  # noqa: E402

pytest.importorskip("ai_edge_litert")
try:
    from faceprompt.detect import BlazeFaceDetector as _Installed  # noqa: E402

    _Installed.check_installed()
except ImportError as missing:
    pytest.skip(f"BlazeFace is not installed: {missing}", allow_module_level=True)

from faceprompt import detect  # noqa: E402
from faceprompt.blazeface import BlazeFace, FacePresence, tiles, weighted_nms  # noqa: E402
from faceprompt.book.photos import portrait_path  # noqa: E402
from faceprompt.demo.pipeline import FacePipeline  # noqa: E402
from faceprompt.detect import BlazeFaceDetector, Detection, demo_detector, get_detector  # noqa: E402


@pytest.mark.parametrize("height, width", [(480, 640), (540, 960), (720, 1280), (1000, 300), (300, 300)])
def test_tiles_cover_the_frame_and_overlap_by_a_quarter(height, width):
    found = tiles(height, width, share=0.4, overlap=0.25)
    side = found[0][2]
    assert side == int(min(0.4 * max(height, width), height, width))
    covered = np.zeros((height, width), bool)
    for top, left, s in found:
        assert s == side and top + s <= height and left + s <= width
        covered[top:top + s, left:left + s] = True
    assert covered.all()
    for axis in (0, 1):
        starts = sorted({t[axis] for t in found})
        assert all(b - a <= side * 3 / 4 + 1 for a, b in zip(starts, starts[1:]))


def test_a_face_two_passes_found_keeps_the_finer_pass_box_and_points():
    boxes = np.array([[100.0, 100.0, 200.0, 200.0], [104.0, 98.0, 204.0, 198.0], [500.0, 500.0, 540.0, 540.0]])
    points = np.stack([np.full((6, 2), 150.0), np.full((6, 2), 160.0), np.full((6, 2), 520.0)])
    scores = np.array([0.95, 0.8, 0.7])  # the coarse pass is surer: its score stays, its points do not
    merged_boxes, merged_points, merged_scores = weighted_nms(boxes, points, scores, detail=np.array([0.1, 0.4, 0.1]))
    assert merged_scores.tolist() == [0.95, 0.7]
    assert merged_boxes[0].tolist() == boxes[1].tolist() and (merged_points[0] == 160.0).all()
    blended_boxes, _, _ = weighted_nms(boxes, points, scores)  # without detail: the score-weighted mean
    assert 100.0 < blended_boxes[0][0] < 104.0


def test_tiles_run_only_where_they_are_larger_than_the_model_input(monkeypatch):
    model, calls = BlazeFace("short"), []
    original = BlazeFace.detect
    monkeypatch.setattr(BlazeFace, "detect", lambda self, rgb: calls.append(rgb.shape[:2]) or original(self, rgb))
    model.detect_tiled(np.zeros((20, 4000, 3), np.uint8))  # tiles of 20 px: the whole frame only
    model.detect_tiled(np.zeros((300, 300, 3), np.uint8))  # tiles of 120 px, under the 128-px input
    assert calls == [(20, 4000), (300, 300)]
    model.detect_tiled(np.zeros((480, 640, 3), np.uint8))
    assert calls[2] == (480, 640) and set(calls[3:]) == {(256, 256)} and len(calls[3:]) == len(tiles(480, 640))


def test_a_small_face_in_a_large_frame_is_found_by_the_tiles_only():
    h.require_utkface()  # skips, with the reason, without the shared data
    face = h.detectable_faces(1)[0].resize((150, 150))
    canvas = Image.new("RGB", (1280, 720), (118, 124, 130))
    canvas.paste(face, (900, 420))
    rgb = np.asarray(canvas)
    model = BlazeFace("short")
    assert len(model.detect(rgb)[2]) == 0  # 150 px of 1280 is 15 px of the model's 128: too small whole
    (found,) = [d for d in get_detector("blazeface").detect(rgb) if not d.rejected]
    assert h.inside(found.box, (900, 420, 1050, 570))


def _portrait() -> np.ndarray:
    path = portrait_path()
    if path is None:
        pytest.skip("matplotlib's sample portrait is not installed")
    return np.asarray(Image.open(path).convert("RGB"))


def test_the_face_mesh_sees_a_face_in_the_face_and_none_beside_it():
    rgb = _portrait()
    face = max(get_detector("blazeface").detect(rgb), key=lambda d: d.area)
    presence = FacePresence()
    assert presence.probability(rgb, face.box, face.landmarks[:2]) > 0.9
    x0, y0, x1, y1 = face.box
    below = (x0, y1 + 40, x1, y1 + 40 + (y1 - y0))  # the uniform under the chin, a face's size
    assert presence.probability(rgb, below, ((0, 0), (1, 0))) < 0.1


def test_an_unsure_box_without_a_face_is_rejected_with_the_reason_and_dropped(monkeypatch):
    rgb = _portrait()
    face = max(get_detector("blazeface").detect(rgb), key=lambda d: d.area)
    x0, y0, x1, y1 = face.box
    below = Detection((x0, y1 + 40, x1, y1 + 40 + (y1 - y0)), 0.55, face.landmarks)
    detector = BlazeFaceDetector()
    reason = detector._rejection(rgb, below.box, np.asarray(face.landmarks)[[0, 1]], below.score)
    assert reason.startswith("face-mesh face probability")
    assert detector._rejection(rgb, face.box, np.asarray(face.landmarks)[[0, 1]], 0.55) == ""
    assert detector._rejection(rgb, below.box, np.asarray(face.landmarks)[[0, 1]], 0.9) == ""  # sure: unchecked

    larger = (x0 - 20, y1 + 40, x1 + 20, y1 + 80 + (y1 - y0))  # larger than the face: pick_face would take it
    sure_and_not = [face, Detection(larger, below.score, below.landmarks, reason)]
    monkeypatch.setattr(detector, "detect", lambda frame: sure_and_not)
    pipeline = FacePipeline(detector, FacePipeline.load().classifier)
    result = pipeline.annotate(Image.fromarray(rgb))
    assert [f.box for f in result.faces] == [face.box]
    assert [d["reason"] for d in result.dropped] == [f"not a face: {reason}"]
    assert detect.pick_face(sure_and_not) == face


def test_a_face_whose_points_look_wrong_is_kept_when_the_face_mesh_sees_it(monkeypatch):
    """A face turned to profile has its eyes close together: no frontal layout, yet a face. BlazeFace's second
    look keeps it; a detector without one (dlib's boxes with the same points) loses it."""
    rgb = _portrait()
    face = max(get_detector("blazeface").detect(rgb), key=lambda d: d.area)
    (lx, ly), (rx, ry) = face.landmarks[:2]
    squeezed = ((lx, ly), (lx + 3, ly), *face.landmarks[2:])  # eyes 3 px apart: fails the layout rule
    odd = Detection(face.box, face.score, squeezed)

    class Fixed:
        name = "fixed"

        def detect(self, frame):
            return [odd]

    classifier = FacePipeline.load().classifier
    without = FacePipeline(Fixed(), classifier, min_score=0.0).annotate(Image.fromarray(rgb))
    assert without.faces == [] and without.dropped[0]["reason"].startswith("not a face")
    detector = BlazeFaceDetector()
    monkeypatch.setattr(detector, "detect", lambda frame: [odd])
    kept = FacePipeline(detector, classifier).annotate(Image.fromarray(rgb))
    assert [f.box for f in kept.faces] == [face.box]


def test_a_box_inside_a_larger_face_is_dropped():
    from faceprompt.demo.screening import inside_larger

    assert inside_larger((10, 10, 30, 30), [(0, 0, 100, 100)]) == 0
    assert inside_larger((90, 90, 130, 130), [(0, 0, 100, 100)]) is None  # a corner overlaps, not inside
    assert inside_larger((0, 0, 100, 100), [(10, 10, 30, 30)]) is None  # the larger one stays
    rgb = _portrait()
    face = max(get_detector("blazeface").detect(rgb), key=lambda d: d.area)
    x0, y0, x1, y1 = face.box
    eye = Detection((x0 + 10, y0 + 10, (x0 + x1) / 2, (y0 + y1) / 2), 0.9, face.landmarks)

    class Fixed:
        name = "fixed"

        def detect(self, frame):
            return [eye, face]  # the small box first: the order must not matter

    result = FacePipeline(Fixed(), FacePipeline.load().classifier, min_score=0.0).annotate(Image.fromarray(rgb))
    assert [f.box for f in result.faces] == [face.box]
    assert [d["reason"] for d in result.dropped] == ["not a face: inside a larger face's box"]


def test_the_demo_falls_back_to_dlib_without_blazeface(monkeypatch):
    assert demo_detector() == "blazeface"

    def missing():
        raise ImportError("no LiteRT")

    monkeypatch.setattr(BlazeFaceDetector, "check_installed", staticmethod(missing))
    assert demo_detector() == detect.DEFAULT_DETECTOR == "dlib"


def test_a_missing_model_file_makes_the_demo_fall_back_to_dlib(monkeypatch, tmp_path):
    import faceprompt.blazeface as blazeface

    original = blazeface.model_path
    monkeypatch.setattr(blazeface, "model_path", lambda name: str(tmp_path / "gone.tflite") if name == "mesh"
                        else original(name))
    with pytest.raises(ImportError, match="model files are missing"):
        BlazeFaceDetector.check_installed()
    assert demo_detector() == "dlib"
