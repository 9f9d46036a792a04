"""The one face crop: the similarity transform, upright output for a rotated face, real faces onto the
template, the fallback, and the same crop from ``prepare`` and from the demo."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))
from data_fixtures import shared_data  # noqa: E402

from faceprompt.align import TEMPLATE, face_crop, similarity_transform, apply_transform  # noqa: E402
from faceprompt.detect import Detection, crop_face  # noqa: E402

SIZE = 224
DOT_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def rotation(angle_deg: float, scale: float, shift) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), shift[0]],
                     [scale * math.sin(a), scale * math.cos(a), shift[1]]])


def test_similarity_transform_recovers_a_known_one():
    truth = rotation(37.0, 1.7, (12.0, -5.0))
    src = TEMPLATE * 100
    found = similarity_transform(src, apply_transform(truth, src))
    assert np.allclose(found, truth, atol=1e-9)


def test_similarity_transform_never_reflects():
    src = TEMPLATE * 100
    mirrored = src * np.array([-1.0, 1.0])  # a reflection is the exact fit; a similarity must not take it
    matrix = similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_similarity_transform_refuses_degenerate_points():
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 2)), TEMPLATE)
    with pytest.raises(ValueError, match="matching"):
        similarity_transform(TEMPLATE[:3], TEMPLATE)


def dot_centres(image: Image.Image) -> np.ndarray:
    arr = np.asarray(image).astype(int)
    centres = []
    for colour in DOT_COLOURS:
        mask = (np.abs(arr - np.array(colour)).sum(axis=2) < 120)
        ys, xs = np.nonzero(mask)
        assert len(xs), f"dot {colour} lost in the crop"
        centres.append((xs.mean(), ys.mean()))
    return np.array(centres)


@pytest.mark.parametrize("angle", [-40.0, 25.0, 90.0])
def test_a_rotated_face_comes_out_upright(angle):
    """Dots at the five landmarks of a face turned by ``angle`` land on the template, eye line level."""
    placed = rotation(angle, 0.8, (150.0, 60.0))
    points = apply_transform(placed, TEMPLATE * 200)
    photo = Image.new("RGB", (480, 400), (128, 128, 128))
    pen = ImageDraw.Draw(photo)
    for (x, y), colour in zip(points, DOT_COLOURS):
        pen.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
    detection = Detection((0.0, 0.0, 480.0, 400.0), 1.0, tuple(map(tuple, points)))
    crop = face_crop(photo, detection, SIZE, "aligned")
    assert crop.mode == "aligned" and not crop.fell_back and crop.image.size == (SIZE, SIZE)
    found = dot_centres(crop.image)
    assert np.abs(found - TEMPLATE * SIZE).max() < 2.0
    eye_dx, eye_dy = found[1] - found[0]
    assert abs(math.degrees(math.atan2(eye_dy, eye_dx))) < 1.0


def test_no_landmarks_falls_back_to_the_box_crop_and_says_so():
    pytest.importorskip("facenet_pytorch")
    flat = Image.new("RGB", (160, 120), (90, 90, 90))  # nothing a landmark model could call a face
    box = (40.0, 20.0, 100.0, 90.0)
    crop = face_crop(flat, Detection(box, 1.0), 64, "aligned")
    assert crop.mode == "box" and crop.reason == "no landmarks found"
    assert np.array_equal(np.asarray(crop.image), np.asarray(crop_face(flat, box, 0.25, 64)))
    whole = face_crop(flat, None, 64, "aligned")
    assert whole.mode == "full" and whole.fell_back


def test_box_mode_is_the_plain_crop():
    arr = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    image, box = Image.fromarray(arr), (30.0, 20.0, 90.0, 95.0)
    crop = face_crop(image, Detection(box, 1.0), 48, "box", margin=0.3)
    assert crop.mode == "box" and not crop.fell_back
    assert np.array_equal(np.asarray(crop.image), np.asarray(crop_face(image, box, 0.3, 48)))
    with pytest.raises(ValueError, match="crop mode"):
        face_crop(image, None, 48, "tilted")


def _real_faces(folder: str, pattern: str, n: int) -> list[Path]:
    return sorted(shared_data(folder).glob(pattern))[:n]


@pytest.mark.parametrize("folder,pattern", [("UTKFace", "*.jpg"), ("facial_expressions/images", "*.jpg")])
def test_real_faces_land_on_the_template(folder, pattern):
    """Landmarks found again on the aligned crop of real photos sit on the template within a few pixels."""
    pytest.importorskip("facenet_pytorch")
    from faceprompt.align import get_landmarker
    from faceprompt.data.images import load_rgb

    errors, tilts = [], []
    for path in _real_faces(folder, pattern, 12):
        crop = face_crop(load_rgb(path), None, SIZE, "aligned")
        if crop.fell_back:
            continue
        again = get_landmarker().locate(np.asarray(crop.image))
        if again is not None:
            errors.append(np.linalg.norm(again - TEMPLATE * SIZE, axis=1).mean())
            tilts.append(abs(math.degrees(math.atan2(*(again[1] - again[0])[::-1]))))
    assert len(errors) >= 10, "landmarks were found on too few real faces"
    # Faces differ in shape, so five points never all fit exactly: ~6 px of 224 is what a correct
    # alignment leaves (measured); the box crop of the same photos is off by ~16 px (median).
    assert np.median(errors) < 8.0, f"median landmark error {np.median(errors):.1f} px of {SIZE}"
    assert np.median(tilts) < 3.0, f"median eye-line tilt {np.median(tilts):.1f} degrees"


@pytest.mark.parametrize("detector, landmarks, mean_diff", [("dlib", "full-search", 2.0), ("dlib", "search", 2.0),
                                                          ("dlib", "boxes", 8.0), ("blazeface", "search", 2.0)])
def test_prepare_and_demo_make_the_same_crop(tmp_path, detector, landmarks, mean_diff):
    """The crop ``prepare`` writes and the one the demo classifies are the same face crop (JPEG aside); the
    demo's batched landmarks on the detector's boxes move it by a few grey levels on average. BlazeFace's
    own landmarks make its crop in both."""
    pytest.importorskip("facenet_pytorch")
    if detector == "blazeface":
        pytest.importorskip("ai_edge_litert")
    from faceprompt.data.images import load_rgb
    from faceprompt.demo.pipeline import FacePipeline
    from faceprompt.detect import pick_face
    from faceprompt.data.prepare import CropJob, crop_one

    path = _real_faces("facial_expressions/images", "*.jpg", 1)[0]
    pipeline = FacePipeline.load(detector=detector, crop="aligned", landmarks=landmarks)
    dst = tmp_path / "crop.jpg"
    outcome = crop_one(CropJob("k", str(path), str(dst), True, detector, 0.25, pipeline.crop_size, "aligned"))
    assert outcome["status"] == "face" and outcome["crop"] == "aligned"
    image = load_rgb(path)
    face = pick_face(pipeline.detect(np.asarray(image)))
    demo = pipeline.face_crops(image, [face])[0]
    assert demo.mode == "aligned"
    diff = np.abs(np.asarray(Image.open(dst), dtype=float) - np.asarray(demo.image, dtype=float))
    assert diff.mean() < mean_diff  # search: JPEG quality 95 only


def test_landmarks_on_detector_boxes_are_near_the_searched_ones():
    """MTCNN's last stages on dlib's boxes, all faces in one batch, land within 4% of the box side of the points
    the whole cascade finds around each face; a box that is no face gets none."""
    pytest.importorskip("facenet_pytorch")
    from faceprompt.align import get_landmarker
    from faceprompt.data.images import load_rgb
    from faceprompt.detect import get_detector, pick_face

    pytest.importorskip("dlib")
    landmarker, detector = get_landmarker(), get_detector("dlib")
    paths = _real_faces("facial_expressions/images", "*.jpg", 4)
    for path in paths:
        rgb = np.asarray(load_rgb(path))
        face = pick_face(detector.detect(rgb))
        searched = landmarker.locate(rgb, face.box)
        grey = (0.0, 0.0, 40.0, 40.0)  # a corner of flat grey padding: no face
        on_box, nothing = landmarker.from_boxes(np.pad(rgb, ((50, 0), (50, 0), (0, 0)), constant_values=128),
                                                [tuple(v + 50 for v in face.box), grey])
        assert nothing is None
        assert np.abs(on_box - 50 - searched).max() < 0.04 * (face.box[2] - face.box[0])


def test_searching_without_the_small_face_scales_finds_the_same_points():
    """The demo's batched search skips the pyramid scales for faces under half the box: same points."""
    pytest.importorskip("facenet_pytorch")
    pytest.importorskip("dlib")
    from faceprompt.align import get_landmarker
    from faceprompt.data.images import load_rgb
    from faceprompt.detect import get_detector, pick_face

    landmarker, detector = get_landmarker(), get_detector("dlib")
    for path in _real_faces("facial_expressions/images", "*.jpg", 3) + _real_faces("UTKFace", "*.jpg", 3):
        rgb = np.asarray(load_rgb(path))
        face = pick_face(detector.detect(rgb))
        if face is None:
            continue
        assert landmarker._skipped_scales(face.box, 1.0) > 0 or face.width < 48
        (fast,) = landmarker.locate_many(rgb, [face.box], skip_small=True)
        np.testing.assert_allclose(fast, landmarker.locate(rgb, face.box), atol=1e-3)
    assert landmarker._model.min_face_size == 12  # restored


@pytest.mark.parametrize("angle", [-30.0, 30.0])
def test_a_rotated_real_face_comes_out_upright_with_blazeface(angle):
    """A real face turned by ``angle``: BlazeFace's landmarks bring it back level (MTCNN, searched afresh on the
    crop, finds the eye line within a few degrees)."""
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("facenet_pytorch")
    from faceprompt.align import get_landmarker
    from faceprompt.data.images import load_rgb
    from faceprompt.detect import get_detector, pick_face

    path = _real_faces("UTKFace", "*.jpg", 1)[0]
    image = load_rgb(path)
    canvas = Image.new("RGB", (400, 400), (128, 128, 128))
    canvas.paste(image, ((400 - image.width) // 2, (400 - image.height) // 2))
    turned = canvas.rotate(angle, resample=Image.BICUBIC, fillcolor=(128, 128, 128))
    face = pick_face(get_detector("blazeface").detect(np.asarray(turned)))
    assert face is not None and face.landmarks is not None
    crop = face_crop(turned, face, SIZE, "aligned")
    points = get_landmarker().locate(np.asarray(crop.image))
    assert points is not None
    tilt = abs(math.degrees(math.atan2(*(points[1] - points[0])[::-1])))
    assert tilt < 8.0, f"eye line tilted {tilt:.1f} degrees after alignment"
