"""Face detectors behind one interface, and the crop geometry."""
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from data_fixtures import shared_data  # noqa: E402

from faceprompt.data.images import load_rgb  # noqa: E402
from faceprompt.detect import (DEFAULT_DETECTOR, Detection, available_detectors, crop_face, expand_box,  # noqa: E402
                               get_detector, pick_face)

DETECTORS = available_detectors()  # registered backends whose package is installed here


def test_at_least_two_offline_backends_and_the_default():
    assert {"haar", "dlib"} <= set(DETECTORS)
    assert DEFAULT_DETECTOR in DETECTORS


def test_unknown_detector():
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        get_detector("nope")


@pytest.mark.parametrize("name", DETECTORS)
def test_blank_image_has_no_face(name):
    assert get_detector(name).detect(np.full((120, 120, 3), 127, np.uint8)) == []


@pytest.mark.parametrize("name", DETECTORS)
def test_rejects_non_rgb_input(name):
    with pytest.raises(ValueError, match="uint8 RGB"):
        get_detector(name).detect(np.zeros((50, 50), np.float32))


@pytest.mark.shared_data
@pytest.mark.parametrize("name", DETECTORS)
def test_finds_the_face_in_real_photos(name):
    folder = shared_data("facial_expressions", "images")
    # An LFW-style photo: 128 px with the face in the middle.
    image = load_rgb(folder / "Tony_Blair_0023.jpg")
    faces = get_detector(name).detect(np.asarray(image))
    assert faces, f"{name} found no face"
    best = pick_face(faces)
    cx, cy = (best.box[0] + best.box[2]) / 2, (best.box[1] + best.box[3]) / 2
    assert abs(cx - 64) < 20 and abs(cy - 64) < 25  # in the middle of the frame
    assert 20 < best.width <= 128
    assert all(0 <= v <= 128 for v in best.box)


def test_detection_geometry_and_pick_largest():
    small, big = Detection((0, 0, 10, 10), 0.9), Detection((5, 5, 45, 35), 0.5)
    assert big.width == 40 and big.height == 30 and big.area == 1200
    assert pick_face([small, big]) is big
    assert pick_face([]) is None


def test_expand_box_is_square_with_margin():
    left, top, right, bottom = expand_box((10, 20, 50, 100), margin=0.25)
    assert right - left == bottom - top == 120  # larger side 80 * 1.5
    assert (left + right) / 2 == 30 and (top + bottom) / 2 == 60
    with pytest.raises(ValueError):
        expand_box((0, 0, 1, 1), -0.1)


def test_crop_face_pads_with_edge_pixels():
    arr = np.zeros((100, 100, 3), np.uint8)
    arr[:, :50] = 255  # left half white
    crop = np.asarray(crop_face(Image.fromarray(arr), (0, 0, 40, 40), margin=0.5, size=64))
    assert crop.shape == (64, 64, 3)
    assert crop[32, 0].min() > 250  # padding left of the image repeats the white edge, no black bar


def test_crop_face_without_box_is_centre_square():
    arr = np.zeros((50, 100, 3), np.uint8)
    arr[:, 25:75] = 200
    crop = np.asarray(crop_face(Image.fromarray(arr), None, size=32))
    assert crop.shape == (32, 32, 3) and crop.min() > 190


def test_registering_a_taken_detector_name_is_refused():
    from faceprompt.detect import DETECTORS as REGISTERED, register_detector
    from faceprompt.registry import DuplicateNameError

    original = REGISTERED["haar"]
    with pytest.raises(DuplicateNameError, match="detector 'haar' is already registered"):
        register_detector("haar")(type("OtherHaar", (), {}))
    assert REGISTERED["haar"] is original
