"""The demo's fast paths: a shrunk frame for the detector, batched landmarks and frames, per-stage times."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import demo_helpers as h  # noqa: E402

from faceprompt.cli import main  # noqa: E402
from faceprompt.demo.pipeline import FacePipeline, scaled, shrink  # noqa: E402
from faceprompt.detect import Detection, get_detector  # noqa: E402


@pytest.fixture(scope="module")
def pipeline():
    # MTCNN's landmark paths: a detector that gives boxes only (BlazeFace brings its own points).
    return FacePipeline.load(detector="dlib").warm_up()


def labels(result) -> list[dict[str, str]]:
    return [{task: p.label for task, p in face.predictions.items()} for face in result.faces]


def test_shrunk_frames_map_boxes_and_points_back():
    rgb = np.zeros((480, 640, 3), np.uint8)
    small, factor = shrink(rgb, 320)
    assert small.shape == (240, 320, 3) and factor == 0.5
    assert shrink(rgb, 1000) == (rgb, 1.0)
    d = scaled(Detection((10, 20, 30, 40), 0.9, ((1, 2),) * 5), factor)
    assert d.box == (20, 40, 60, 80) and d.landmarks[0] == (2, 4) and d.score == 0.9
    with pytest.raises(ValueError, match="detect_max_side"):
        FacePipeline(get_detector("haar"), None, detect_max_side=8)
    with pytest.raises(ValueError, match="landmarks"):
        FacePipeline(get_detector("haar"), None, landmarks="guess")


def test_shrunk_detection_finds_the_same_faces(pipeline):
    photo, regions = h.group_photo(6)
    full = pipeline.detect(np.asarray(photo))
    fast = FacePipeline(pipeline.detector, pipeline.classifier, detect_max_side=320).detect(np.asarray(photo))
    assert len(fast) == len(full) == 6
    for region in regions:
        (a,) = [d for d in full if h.inside(d.box, region)]
        (b,) = [d for d in fast if h.inside(d.box, region)]
        assert np.abs(np.subtract(a.box, b.box)).max() < 0.15 * a.width  # the same face, a coarser box


def test_box_landmarks_align_every_face_of_a_frame_in_one_batch(pipeline, monkeypatch):
    from faceprompt.align import Landmarker

    photo, _ = h.group_photo(6)
    calls = []
    original = Landmarker.from_boxes
    monkeypatch.setattr(Landmarker, "from_boxes", lambda self, rgb, boxes, *a, **k: calls.append(len(boxes))
                        or original(self, rgb, boxes, *a, **k))
    monkeypatch.setattr(Landmarker, "locate", lambda *a, **k: pytest.fail("a face was searched"))
    fast = FacePipeline(pipeline.detector, pipeline.classifier, landmarks="boxes")
    result = fast.annotate(photo)
    assert calls == [6] and all(f.crop == "aligned" for f in result.faces)
    thumbnails = fast.crops(photo, result)  # the points are kept: thumbnails need no second search
    assert len(thumbnails) == 6 and calls == [6]


def test_frames_annotated_together_equal_frames_one_by_one(pipeline, monkeypatch):
    photos = [h.group_photo(2)[0], h.group_photo(3)[0]]
    alone = [pipeline.annotate(p) for p in photos]
    model = pipeline.classifier.model
    batches = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda images: batches.append(len(images)) or original(images))
    together = pipeline.annotate_frames(photos)
    assert batches == [5]  # all faces of both frames in one forward
    for a, b in zip(alone, together):
        assert [f.box for f in a.faces] == [f.box for f in b.faces] and labels(a) == labels(b)
        assert b.detect_ms > 0 and b.align_ms > 0 and b.classify_ms > 0


def test_mtcnn_detects_a_batch_of_frames_as_one_by_one():
    pytest.importorskip("facenet_pytorch")
    detector = get_detector("mtcnn")
    frames = [np.asarray(h.group_photo(n)[0]) for n in (1, 2)]
    batched = detector.detect_batch(frames)
    for frame, found in zip(frames, batched):
        alone = detector.detect(frame)
        assert len(found) == len(alone)
        for a, b in zip(alone, found):
            assert np.allclose(a.box, b.box, atol=0.5) and np.allclose(a.landmarks, b.landmarks, atol=0.5)


def test_cli_json_has_every_stage_time(tmp_path, capsys):
    photo, _ = h.group_photo(2)
    photo.save(tmp_path / "pair.jpg", quality=95)
    assert main(["demo", str(tmp_path / "pair.jpg"), "--out", str(tmp_path / "out"), "--json",
                 "--detect-max-side", "480", "--landmarks", "boxes"]) == 0
    assert " | align " in capsys.readouterr().out
    stages = json.loads((tmp_path / "out" / "pair.json").read_text())["stages_ms"]
    assert set(stages) == {"detect", "align", "classify", "draw"} and all(v > 0 for v in stages.values())


def test_cli_video_in_frame_batches(tmp_path, capsys):
    photo, _ = h.group_photo(2)
    video = h.write_video(tmp_path / "clip.mp4", [photo] * 3)
    assert main(["demo", str(video), "--out", str(tmp_path / "out"), "--json", "--frame-batch", "2"]) == 0
    out = capsys.readouterr().out
    assert all(f"clip frame {i}: 2 faces" in out for i in range(3))
    frames = json.loads((tmp_path / "out" / "clip.json").read_text())["frames"]
    assert [f["frame"] for f in frames] == [0, 1, 2] and all(f["stages_ms"]["draw"] > 0 for f in frames)


def test_default_search_is_batched_and_gives_the_face_by_face_labels(pipeline, monkeypatch):
    from faceprompt.align import Landmarker

    photo, _ = h.group_photo(6)
    one_by_one = FacePipeline(pipeline.detector, pipeline.classifier, landmarks="full-search").annotate(photo)
    calls = []
    original = Landmarker.locate_many
    monkeypatch.setattr(Landmarker, "locate_many", lambda self, rgb, boxes, *a: calls.append(len(boxes))
                        or original(self, rgb, boxes, *a))
    batched = pipeline.annotate(photo)
    assert calls == [6]  # no face needed a second search
    assert labels(batched) == labels(one_by_one)
    for a, b in zip(one_by_one.faces, batched.faces):
        for task, p in a.predictions.items():
            assert p.confidence == pytest.approx(b.predictions[task].confidence, abs=1e-3)
