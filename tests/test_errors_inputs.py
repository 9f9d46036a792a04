"""Bad input caught where it is read: manifest ages, face images too small to classify, option values."""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faceprompt.commands import options
from faceprompt.data.images import MIN_FACE_SIZE, ImageLoadError, check_face_files, load_face
from faceprompt.data.manifest import MANIFEST_COLUMNS, read_manifest


def manifest_file(path, ages: list[tuple[str, str]]):
    """A manifest whose rows carry these (age, age_bin) pairs."""
    rows = [{c: "" for c in MANIFEST_COLUMNS} | {"path": f"{i}.png", "dataset": "d", "split": "test",
                                                "age": age, "age_bin": age_bin}
            for i, (age, age_bin) in enumerate(ages)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("age", ["twenty", "-1", "151", "nan", "inf", "25 years"])
def test_manifest_refuses_an_age_that_is_not_a_number_of_years(tmp_path, age):
    path = manifest_file(tmp_path / "m.csv", [("30", "30-39"), (age, "")])
    with pytest.raises(ValueError, match=rf"m.csv: line 3, field 'age': '{age}' is not an age in years"):
        read_manifest(path)


def test_manifest_refuses_an_age_bin_that_is_not_the_ages(tmp_path):
    path = manifest_file(tmp_path / "m.csv", [("30", "30-39"), ("45", "20-29")])
    with pytest.raises(ValueError, match=r"m.csv: line 3, field 'age_bin': '20-29' does not match age 45 "
                                         r"\(which is in bin '40-49'\)"):
        read_manifest(path)


def test_manifest_accepts_consistent_and_partial_ages(tmp_path):
    pairs = [("30", "30-39"), ("29.5", "20-29"), ("70", "70+"), ("0", "0-2"), ("41", ""), ("", "50-59"), ("", "")]
    frame = read_manifest(manifest_file(tmp_path / "m.csv", pairs))
    # An age without its bin gets the bin of the age (else the age task would miss the row).
    assert list(zip(frame["age"], frame["age_bin"])) == [p if p != ("41", "") else ("41", "40-49") for p in pairs]


def test_manifest_refuses_a_row_without_an_image_path(tmp_path):
    path = manifest_file(tmp_path / "m.csv", [("30", "30-39"), ("", "")])
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[1, "path"] = " "
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"m.csv: line 3, field 'path': empty"):
        read_manifest(path)


def image(path, width, height):
    Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("size", [(1, 1), (MIN_FACE_SIZE - 1, 200), (200, MIN_FACE_SIZE - 1)])
def test_an_image_too_small_for_a_face_is_refused(tmp_path, size):
    path = image(tmp_path / "small.png", *size)
    with pytest.raises(ImageLoadError, match=rf"small.png: {size[0]}x{size[1]} pixels is too small"):
        load_face(path)
    with pytest.raises(ImageLoadError, match=rf"in m.csv: .*small.png: {size[0]}x{size[1]} pixels is too small"):
        check_face_files([str(image(tmp_path / "ok.png", 64, 64)), str(path)], where="in m.csv")


def test_the_smallest_face_size_is_accepted(tmp_path):
    path = image(tmp_path / "edge.png", MIN_FACE_SIZE, MIN_FACE_SIZE)
    assert load_face(path).size == (MIN_FACE_SIZE, MIN_FACE_SIZE)
    check_face_files([str(path)])


@pytest.mark.parametrize("parse, good, bad", [
    (options.positive_int, {"1": 1, "4096": 4096}, ["0", "-1", "1.5", "x", ""]),
    (options.non_negative_int, {"0": 0, "3": 3}, ["-1", "two"]),
    (options.margin, {"0": 0.0, "0.25": 0.25, "2": 2.0}, ["-0.01", "2.5", "nan", "inf", "wide"]),
    (options.port, {"1": 1, "8866": 8866, "65535": 65535}, ["0", "65536", "-80"]),
])
def test_option_types_accept_the_range_and_name_what_they_want(parse, good, bad):
    for text, value in good.items():
        assert parse(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=rf"must be .*got {text!r}"):
            parse(text)


def test_checking_files_refuses_what_loading_would(monkeypatch, tmp_path):
    import faceprompt.data.images as images

    monkeypatch.setattr(images, "DEFAULT_MAX_PIXELS", 1000)
    path = image(tmp_path / "big.png", 40, 40)
    with pytest.raises(ImageLoadError, match="big.png: 40x40 = 1,600 pixels exceeds the limit of 1,000"):
        check_face_files([str(path)])


def test_a_key_given_twice_in_a_config_is_refused_naming_key_and_line(tmp_path, capsys):
    from test_errors import error_line, run_cli

    config = tmp_path / "dup.yaml"
    config.write_text("method: coop\nlr: 0.1\nepochs: 2\nlr: 0.5\n")
    code, _, err = run_cli(capsys, "train", "--config", config)
    error_line(code, err, str(config), "line 4", "'lr' given twice")
