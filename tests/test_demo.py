"""The demo pipeline and `faceprompt demo`: real faces pasted into one photo, videos, and every bad input."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import demo_helpers as h  # noqa: E402

from faceprompt.cli import main  # noqa: E402
from faceprompt.data.images import ImageLoadError  # noqa: E402
from faceprompt.demo.pipeline import MIN_SCORES, PALETTE, FacePipeline, FrameResult, draw  # noqa: E402
from faceprompt.detect import Detection  # noqa: E402
from faceprompt.predict import default_backbone  # noqa: E402
from faceprompt.tasks import get_tasks  # noqa: E402

TASKS = {t.name: t.classes for t in get_tasks(None)}


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline.load().warm_up()  # the default backbone and detector, zero-shot


def check_faces_match(result: FrameResult, regions):
    """Exactly one detection per pasted face, each fully labelled with valid probabilities."""
    assert len(result.faces) == len(regions)
    for region in regions:
        assert sum(h.inside(f.box, region) for f in result.faces) == 1, f"face at {region} not found once"
    for face in result.faces:
        assert set(face.predictions) == set(TASKS)
        for task, pred in face.predictions.items():
            assert list(pred.probabilities) == list(TASKS[task])
            assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
            assert pred.label == max(pred.probabilities, key=pred.probabilities.get)
            assert pred.confidence == pytest.approx(pred.probabilities[pred.label])


# --- the pipeline ----------------------------------------------------------------------------------------

def test_six_faces_found_labelled_and_timed(pipeline):
    photo, regions = h.group_photo(6)
    result = pipeline.annotate(photo)
    check_faces_match(result, regions)
    assert (result.width, result.height) == (640, 480) and result.skipped_faces == 0
    assert result.detect_ms > 0 and result.classify_ms > 0
    assert result.total_ms == pytest.approx(result.detect_ms + result.align_ms + result.classify_ms)
    assert result.summary().startswith("6 faces | detect ")


def test_all_faces_of_a_frame_go_through_one_forward(pipeline, monkeypatch):
    photo, _ = h.group_photo(3)
    model = pipeline.classifier.model
    batches = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda images: batches.append(len(images)) or original(images))
    result = pipeline.annotate(photo)
    assert batches == [3]
    # Batching must not change any face's answer: classify each crop alone and compare.
    monkeypatch.undo()
    crops = pipeline.crops(photo, result)
    for face, crop in zip(result.faces, crops):
        alone = pipeline.classifier.predict([crop])[0]
        for task, pred in face.predictions.items():
            assert pred.probabilities == pytest.approx(alone[task].probabilities, abs=1e-4)


def test_vpt_ts_run_classifies_the_frame_in_one_batched_pass(pipeline, tmp_path, monkeypatch):
    from faceprompt.checkpoint import save_prompts
    from faceprompt.prompts import build_model

    backbone = pipeline.classifier.backbone  # frozen: safe to share with a second method
    assert backbone.name == default_backbone()
    save_prompts(build_model("vpt-ts", backbone, get_tasks(None)), tmp_path / "run")
    pipeline = FacePipeline.load(backbone, run_dir=tmp_path / "run")
    assert pipeline.classifier.model.method == "vpt-ts"
    photo, regions = h.group_photo(2)
    passes = []
    original = backbone.encode_image
    monkeypatch.setattr(backbone, "encode_image",
                        lambda images, *a, **k: passes.append(len(images)) or original(images, *a, **k))
    result = pipeline.annotate(photo)
    check_faces_match(result, regions)
    assert passes == [2 * len(TASKS)]  # one image-tower pass: every face times every task's prompts


def test_many_faces_in_one_photo(pipeline):
    photo, regions = h.group_photo(12, size=(860, 700), columns=4)
    check_faces_match(pipeline.annotate(photo), regions)


def test_max_faces_bounds_the_batch_and_reports_the_rest(pipeline):
    photo, _ = h.group_photo(6)
    capped = FacePipeline(pipeline.detector, pipeline.classifier, max_faces=4).annotate(photo)
    assert len(capped.faces) == 4 and capped.skipped_faces == 2
    assert "+2 not classified" in capped.summary()
    scores = [f.score for f in capped.faces]
    assert scores == sorted(scores, reverse=True)  # the surest detections are the ones kept


def test_no_face_is_an_empty_result_not_an_error(pipeline):
    result = pipeline.annotate(Image.new("RGB", (320, 240), (90, 140, 200)))
    assert result.faces == [] and result.classify_ms == 0.0
    assert result.summary().startswith("no face found")
    assert result.to_json()["faces"] == []


def test_a_face_sized_photo_without_a_found_face_is_labelled_whole(pipeline):
    from faceprompt.align import face_crop

    chip = Image.new("RGB", (48, 48), (120, 110, 100))  # a face crop's size; nothing for a detector to find
    result = pipeline.annotate(chip)
    assert len(result.faces) == 1 and result.faces[0].whole_image and result.faces[0].box == (0, 0, 48, 48)
    assert result.skipped_faces == 0 and "the whole photo" in result.summary()
    assert result.to_json()["faces"][0]["whole_image"] is True
    prepared = face_crop(chip, None, pipeline.crop_size, pipeline.crop_mode, pipeline.margin).image
    assert np.array_equal(np.asarray(pipeline.crops(chip, result)[0]), np.asarray(prepared))  # prepare's crop
    off = FacePipeline(pipeline.detector, pipeline.classifier, face_photo_side=0)
    assert off.annotate(chip).faces == []
    larger = Image.new("RGB", (pipeline.face_photo_side + 1, 100), (120, 110, 100))
    assert pipeline.annotate(larger).faces == []  # a photo, not a face crop: nothing found is nothing labelled
    weak = FacePipeline(FixedDetector([Detection((4, 4, 40, 40), -5.0)]), pipeline.classifier, min_score=0.0)
    screened = weak.annotate(chip)
    assert len(screened.dropped) == 1 and screened.faces[0].whole_image  # a dropped box is not a labelled face
    with pytest.raises(ValueError, match="face_photo_side"):
        FacePipeline(pipeline.detector, pipeline.classifier, face_photo_side=-1)


def test_grayscale_and_rgba_in_memory(pipeline):
    photo, regions = h.group_photo(2)
    check_faces_match(pipeline.annotate(photo.convert("L")), regions)
    check_faces_match(pipeline.annotate(np.asarray(photo.convert("L"))), regions)
    rgba = photo.convert("RGBA")
    alpha = np.zeros(photo.size[::-1], np.uint8)
    for x0, y0, x1, y1 in regions:
        alpha[y0:y1, x0:x1] = 255  # only the faces are opaque; the background is transparent
    rgba.putalpha(Image.fromarray(alpha))
    check_faces_match(pipeline.annotate(rgba), regions)


def test_in_memory_pixel_limit(pipeline):
    small = FacePipeline(pipeline.detector, pipeline.classifier, max_pixels=10_000)
    with pytest.raises(ImageLoadError, match="exceeds the limit of 10,000"):
        small.annotate(np.zeros((200, 200, 3), np.uint8))
    with pytest.raises(ValueError, match="must be uint8"):
        small.annotate(np.zeros((20, 20, 3), np.float32))


def test_draw_boxes_and_labels_in_face_colours(pipeline):
    photo, _ = h.group_photo(2)
    result = pipeline.annotate(photo)
    before = np.asarray(photo).copy()
    out = np.asarray(draw(photo, result))
    assert out.shape == before.shape and np.array_equal(np.asarray(photo), before)  # input untouched
    for i, face in enumerate(result.faces):
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        edge = out[(y0 + y1) // 2, x0]  # the middle of the left edge
        assert tuple(edge) == PALETTE[i], f"face {i}: box edge is {tuple(edge)}"
    # Label pixels lie above each box (there is room in this photo).
    top = min(int(f.box[1]) for f in result.faces)
    assert (out[:top] != before[:top]).any()


class FixedDetector:
    """A detector that returns the detections it was given: the screening rules tested on known boxes."""

    name = "fixed"

    def __init__(self, detections):
        self.detections = detections

    def detect(self, rgb):
        return list(self.detections)


def test_weak_and_small_detections_are_dropped_and_counted(pipeline):
    photo, regions = h.group_photo(2)
    real = pipeline.detect(np.asarray(photo))
    assert len(real) == 2
    weak = Detection(real[1].box, -0.3)  # a face-sized box the detector barely believes in
    tiny = Detection((600.0, 440.0, 612.0, 452.0), 5.0)  # sure, but 12 px: too small to label
    screened = FacePipeline(FixedDetector([real[0], weak, tiny]), pipeline.classifier, min_score=0.0, min_size=20)
    result = screened.annotate(photo)
    assert [f.box for f in result.faces] == [real[0].box]
    reasons = [d["reason"] for d in result.dropped]
    assert len(reasons) == 2 and reasons[0].startswith("score -0.300 < 0") and reasons[1].startswith("size 12 px")
    listed = json.loads(json.dumps(result.to_json()))["dropped"]
    assert [d["box"] for d in listed] == [[round(v, 1) for v in b] for b in (weak.box, tiny.box)]
    assert "2 dropped" in result.summary()
    kept_all = FacePipeline(FixedDetector([real[0], weak, tiny]), pipeline.classifier, min_score=-1.0, min_size=0)
    result = kept_all.annotate(photo)
    # Nothing is dropped for its score or size; the 12-px corner box holds no face's landmarks.
    assert len(result.faces) == 2 and [d["box"] for d in result.dropped] == [list(tiny.box)]
    assert result.dropped[0]["reason"].startswith("not a face")


def test_a_box_on_no_face_is_dropped_and_listed_with_its_reason(pipeline):
    photo, regions = h.group_photo(1)
    real = pipeline.detect(np.asarray(photo))
    background = Detection((500.0, 20.0, 600.0, 120.0), 2.0)  # a sure box on the plain background
    result = FacePipeline(FixedDetector([real[0], background]), pipeline.classifier).annotate(photo)
    assert [f.box for f in result.faces] == [real[0].box]
    listed = json.loads(json.dumps(result.to_json()))["dropped"]
    assert listed == [{"box": list(background.box), "score": 2.0,
                       "reason": "not a face: no eyes, nose and mouth found in the box"}]


def test_default_min_score_is_the_detectors_calibrated_one(pipeline):
    assert pipeline.min_score == MIN_SCORES[pipeline.detector.name]


def test_uncertain_faces_are_flagged_in_json_and_drawing(pipeline):
    photo, _ = h.group_photo(1)
    sure = FacePipeline(pipeline.detector, pipeline.classifier, uncertain_below=0.0).annotate(photo)
    doubtful = FacePipeline(pipeline.detector, pipeline.classifier, uncertain_below=1.01).annotate(photo)
    assert sure.faces[0].uncertain == [] and set(doubtful.faces[0].uncertain) == set(TASKS)
    face_json = doubtful.to_json()["faces"][0]
    assert face_json["uncertain"] is True and all(p["uncertain"] for p in face_json["predictions"].values())
    assert sure.to_json()["faces"][0]["uncertain"] is False
    assert doubtful.faces[0].caption().count("?") == len(TASKS) and "?" not in sure.faces[0].caption()
    assert not np.array_equal(np.asarray(draw(photo, sure)), np.asarray(draw(photo, doubtful)))
    # Only tasks below the threshold are flagged: a threshold between two certainties splits them.
    certainties = sorted(p.certainty for p in sure.faces[0].predictions.values())
    middle = FacePipeline(pipeline.detector, pipeline.classifier, uncertain_below=certainties[-1])
    flagged = middle.annotate(photo).faces[0].uncertain
    assert len(flagged) == sum(c < certainties[-1] for c in certainties)
    assert all("certainty" in p for p in face_json["predictions"].values())


def test_certainty_judges_two_and_nine_classes_alike(pipeline):
    from faceprompt.predict import TaskPrediction

    def prediction(top, k):
        return TaskPrediction("a", top, {str(i): top if i == 0 else (1 - top) / (k - 1) for i in range(k)})

    assert prediction(0.5, 2).certainty == pytest.approx(0.0) and prediction(1.0, 9).certainty == pytest.approx(1.0)
    assert prediction(0.75, 2).certainty == pytest.approx(0.5) and prediction(0.5, 9).certainty == pytest.approx(0.4375)
    # at the default threshold: gender at 68% is flagged, as is a 52% lead among nine age bins; 60% of nine is not
    uncertain = pipeline.uncertain_tasks({"gender": prediction(0.68, 2), "age": prediction(0.52, 9),
                                          "emotion": prediction(0.6, 7)})
    assert pipeline.uncertain_below == 0.5 and uncertain == ["gender", "age"]


# --- the command line ------------------------------------------------------------------------------------

def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def loaded(monkeypatch, pipeline):
    """The CLI reuses the module's pipeline: its model loading is tested once, in test_cli_image_with_json."""
    import faceprompt.commands.demo as cli

    monkeypatch.setattr(cli.FacePipeline, "load", lambda *args, **kwargs: pipeline)
    return pipeline


def demo(*args) -> int:
    return main(["demo", *map(str, args)])


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("faceprompt demo: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_cli_image_with_json(tmp_path, capsys):
    photo, regions = h.group_photo(6)
    photo.save(tmp_path / "group.jpg", quality=95)
    assert demo(tmp_path / "group.jpg", "--out", tmp_path / "out", "--json") == 0
    out = capsys.readouterr().out
    assert "group.jpg: 6 faces | detect " in out and " ms | classify " in out
    annotated = Image.open(tmp_path / "out" / "group.jpg")
    assert annotated.size == photo.size
    record = json.loads((tmp_path / "out" / "group.json").read_text())
    assert record["width"] == 640 and record["detect_ms"] > 0 and record["classify_ms"] > 0
    assert len(record["faces"]) == 6
    for face in record["faces"]:
        assert len(face["box"]) == 4 and isinstance(face["score"], float)
        assert set(face["predictions"]) == set(TASKS)
        probs = face["predictions"]["age"]["probabilities"]
        assert list(probs) == list(TASKS["age"]) and sum(probs.values()) == pytest.approx(1, abs=1e-3)
    for region in regions:
        assert sum(h.inside(f["box"], region) for f in record["faces"]) == 1


def test_cli_runs_the_shipped_run_by_default_and_names_it(tmp_path, capsys, shipped):
    photo, _ = h.group_photo(2)
    photo.save(tmp_path / "pair.jpg", quality=95)
    assert demo(tmp_path / "pair.jpg", "--out", tmp_path / "tuned", "--json") == 0
    tuned = json.loads((tmp_path / "tuned" / "pair.json").read_text())
    assert tuned["model"]["method"] == "vpt" and tuned["model"]["prompts"] == f"shipped: {shipped.name}"
    assert demo(tmp_path / "pair.jpg", "--out", tmp_path / "bare", "--json", "--zero-shot") == 0
    bare = json.loads((tmp_path / "bare" / "pair.json").read_text())
    assert bare["model"]["method"] == "zero-shot"
    assert "(prompts: zero-shot" in capsys.readouterr().err


def test_cli_on_held_out_face_photos_gets_their_gender(tmp_path, capsys, loaded):
    """The default model on real photos it never trained on: the printed gender matches the label."""
    h.require_utkface()
    paths, genders = h.held_out_faces(20)
    for i, path in enumerate(paths):
        shutil.copy(path, tmp_path / f"face{i:02d}.jpg")  # zero-padded: the CLI goes in name order
    assert demo(tmp_path, "--out", tmp_path / "out", "--json") == 0
    out = capsys.readouterr().out
    predicted = []
    for i in range(len(paths)):
        record = json.loads((tmp_path / "out" / f"face{i:02d}.json").read_text())
        assert len(record["faces"]) == 1
        predicted.append(record["faces"][0]["predictions"]["gender"]["label"])
        assert f"face{i:02d}.jpg: 1 face" in out
    # the labels are printed too, one line per face under its photo's summary
    face_lines = [line for line in out.splitlines() if line.startswith("  face 1 at (")]
    assert [line.split(": ", 1)[1].split()[0] for line in face_lines] == predicted
    # On detector crops the model is right about four times in five (on its aligned test chips: 88 %);
    # 14 of 20 leaves room for that, and a coin would reach it one time in seventeen.
    assert sum(p == g for p, g in zip(predicted, genders)) >= 14, (predicted, genders)


def test_cli_exif_rotated_photo_is_upright(tmp_path, capsys, loaded):
    photo, regions = h.group_photo(2)
    path = h.write_exif_rotated(tmp_path / "phone.jpg", photo)
    assert Image.open(path).size == (480, 640)  # stored sideways
    assert demo(path, "--out", tmp_path / "out", "--json") == 0
    record = json.loads((tmp_path / "out" / "phone.json").read_text())
    assert (record["width"], record["height"]) == (640, 480)
    for region in regions:  # boxes are where the faces are in the upright photo
        assert sum(h.inside(f["box"], region) for f in record["faces"]) == 1
    assert Image.open(tmp_path / "out" / "phone.jpg").size == (640, 480)


def test_cli_folder_grayscale_rgba_no_face_and_a_bad_file(tmp_path, capsys, loaded):
    photo, _ = h.group_photo(2)
    folder = tmp_path / "photos"
    folder.mkdir()
    photo.convert("L").save(folder / "gray.jpg")
    rgba = photo.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(folder / "rgba.png")
    Image.new("RGB", (320, 240), (30, 160, 60)).save(folder / "lawn.png")
    h.write_text_as_jpeg(folder / "notes.jpg")
    (folder / "readme.txt").write_text("not an image suffix: ignored")
    assert demo(folder, "--out", tmp_path / "out", "--json") == 1  # one bad file
    captured = capsys.readouterr()
    assert "gray.jpg: 2 faces" in captured.out and "rgba.png: 2 faces" in captured.out
    assert "lawn.png: no face found" in captured.out
    assert "notes.jpg: error:" in captured.err and "unreadable image" in captured.err
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "gray.jpg", "gray.json", "lawn.jpg", "lawn.json", "rgba.jpg", "rgba.json"]
    assert json.loads((tmp_path / "out" / "lawn.json").read_text())["faces"] == []


def test_cli_video(tmp_path, capsys, loaded):
    photo, regions = h.group_photo(2)
    shifted = Image.new("RGB", photo.size, (118, 124, 130))
    shifted.paste(photo.crop((0, 0, 620, 480)), (20, 0))  # the faces move 20 px right
    video = h.write_video(tmp_path / "clip.mp4", [photo, shifted, photo])
    assert demo(video, "--out", tmp_path / "out", "--json") == 0
    out = capsys.readouterr().out
    for i in range(3):
        assert f"clip frame {i}: 2 faces | detect " in out
    assert "clip: 3 frames, mean detect" in out
    record = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert [f["frame"] for f in record["frames"]] == [0, 1, 2]
    assert all(len(f["faces"]) == 2 for f in record["frames"])
    left = lambda frame: min(face["box"][0] for face in frame["faces"])  # noqa: E731
    assert left(record["frames"][1]) - left(record["frames"][0]) == pytest.approx(20, abs=8)

    import cv2

    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = capture.read()
    capture.release()
    assert ok and frames == 3 and first.shape == (480, 640, 3)


def test_cli_max_frames(tmp_path, capsys, loaded):
    frames = [Image.new("RGB", (160, 120), (10 * i, 50, 50)) for i in range(4)]
    video = h.write_video(tmp_path / "blank.avi", frames)
    assert demo(video, "--out", tmp_path / "out", "--max-frames", 2) == 0
    out = capsys.readouterr().out
    assert "blank frame 1: no face found" in out and "blank frame 2" not in out


@pytest.mark.parametrize("make, expected", [
    (lambda d: h.write_text_as_jpeg(d / "notes.jpg"), "unreadable image"),
    (lambda d: write(d / "empty.jpg", b""), "unreadable image"),
    (lambda d: h.write_truncated_jpeg(d / "cut.jpg", Image.new("RGB", (64, 64), (9, 9, 9))), "unreadable image"),
    (lambda d: h.write_huge_png(d / "huge.png"), "exceeds the limit of 50,000,000"),
    (lambda d: write(d / "clip.mp4", b"\x00\x01garbage" * 500), "clip.mp4: cannot open video"),
    (lambda d: d / "missing.jpg", "no such file"),
], ids=["not-an-image", "empty", "truncated", "huge", "unreadable-video", "missing"])
def test_cli_bad_input_is_one_clear_line(tmp_path, capsys, make, expected):
    path = make(tmp_path)
    assert demo(path, "--out", tmp_path / "out") == 1
    line = error_line(capsys)
    assert expected in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_truncated_photo_of_faces_is_refused(tmp_path, capsys):
    photo, _ = h.group_photo(2)
    path = h.write_truncated_jpeg(tmp_path / "cut.jpg", photo)
    assert demo(path, "--out", tmp_path / "out") == 1
    assert "cut.jpg: unreadable image" in error_line(capsys)


def test_cli_usage_errors(tmp_path, capsys):
    assert demo("--out", tmp_path) == 1
    assert "exactly one of INPUT" in error_line(capsys)
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    assert demo(tmp_path / "a.png") == 1
    assert "--out DIR is required" in error_line(capsys)
    assert demo("--webcam", 97, "--out", tmp_path / "cam") == 1
    assert "webcam 97" in error_line(capsys)


@pytest.mark.parametrize("flag, value", [("--uncertain-below", "5"), ("--uncertain-below", "-0.1"),
                                         ("--min-size", "-3")])
def test_label_rules_out_of_range_are_usage_errors(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as stop:
        demo(tmp_path / "x.jpg", "--out", tmp_path / "out", flag, value)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and value in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
