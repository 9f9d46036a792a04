"""load_rgb: every awkward file either becomes upright RGB uint8 or fails with a clear error."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from data_fixtures import face, write_bad_images  # noqa: E402

from faceprompt.data.images import ImageLoadError, load_rgb, load_rgb_array  # noqa: E402


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return write_bad_images(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", ["grayscale", "cmyk", "rgba", "gray16", "rgb16", "exif_rotated"])
def test_every_mode_becomes_rgb_uint8(bad, case):
    img = load_rgb(bad[case])
    arr = np.asarray(img)
    assert img.mode == "RGB" and arr.dtype == np.uint8 and arr.shape[2] == 3


def test_grayscale_keeps_its_level(bad):
    assert np.abs(load_rgb_array(bad["grayscale"]).astype(int) - 128).max() <= 2


def test_cmyk_red_is_red(bad):
    r, g, b = load_rgb_array(bad["cmyk"]).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_rgba_transparency_is_white(bad):
    arr = load_rgb_array(bad["rgba"])
    assert (arr[:, :15] == 255).all()  # transparent half -> white background
    assert (arr[:, 25:] == [0, 0, 255]).all()  # opaque half keeps its blue


def test_16bit_gray_is_scaled_not_clipped(bad):
    arr = load_rgb_array(bad["gray16"])
    assert np.abs(arr.astype(int) - 127).max() <= 1  # 32767/65535 of full scale, not clipped to 255


def test_16bit_rgb_keeps_colour(bad):
    r, g, b = load_rgb_array(bad["rgb16"]).reshape(-1, 3).mean(0)
    assert r > 250 and g < 5 and b < 5


def test_exif_orientation_is_applied(bad):
    arr = load_rgb_array(bad["exif_rotated"])
    assert arr.shape[:2] == (60, 30)  # stored 60x30 landscape, displayed portrait
    assert arr[:8].mean() > 200 and arr[-40:].mean() < 30  # left stripe rotated to the top


@pytest.mark.parametrize("case", ["corrupt", "truncated"])
def test_broken_files_raise_clear_error(bad, case):
    with pytest.raises(ImageLoadError, match=case):
        load_rgb(bad[case])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        load_rgb(tmp_path / "nope.jpg")


def test_pixel_limit(bad):
    with pytest.raises(ImageLoadError, match="exceeds the limit"):
        load_rgb(bad["grayscale"], max_pixels=100)
    assert load_rgb(bad["grayscale"], max_pixels=None).size == (40, 30)


def test_a_manifest_age_without_its_bin_gets_one_and_a_non_number_is_refused(tmp_path):
    import pandas as pd

    from faceprompt.data.manifest import read_manifest

    face(tmp_path / "a.png")
    rows = {"path": ["a.png", "a.png"], "dataset": ["x", "x"], "split": ["test", "test"], "gender": ["", ""],
            "age": ["34", "71.5"], "age_bin": ["", ""], "emotion": ["", ""], "race": ["", ""],
            "identity": ["", ""], "source": ["", ""]}
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    assert list(read_manifest(tmp_path / "m.csv")["age_bin"]) == ["30-39", "70+"]
    rows["age"] = ["1_0", "34"]
    pd.DataFrame(rows).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad.csv: line 2, field 'age': '1_0' is not an age in years"):
        read_manifest(tmp_path / "bad.csv")
