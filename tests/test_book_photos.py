"""The demo chapter's photos from outside the datasets (faceprompt.book.photos)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from faceprompt.book import photos

GRAY = Image.new("RGB", (60, 40), (100, 100, 100))


def test_warm_cast_raises_red_and_lowers_blue_by_its_strength():
    r, g, b = np.asarray(photos.warm_cast(GRAY, 0.2))[0, 0]
    assert (r, g, b) == (120, 100, 80)


def test_dim_darkens_and_tilt_keeps_the_size():
    assert np.asarray(photos.dim(GRAY, 0.5)).max() == 50
    turned = photos.tilted(GRAY, 25)
    assert turned.size == GRAY.size and turned.getpixel((0, 0)) == photos.BACKGROUND


def test_group_places_copies_side_by_side_with_bottoms_aligned():
    canvas = photos.group(GRAY, scales=(1.0, 0.5))
    assert canvas.size == (60 + 30, 40)
    assert canvas.getpixel((70, 0)) == photos.BACKGROUND  # above the small copy
    assert canvas.getpixel((70, 39)) == (100, 100, 100)


def test_every_condition_is_made_from_the_shipped_portrait():
    if photos.portrait_path() is None:
        pytest.skip("this matplotlib ships no sample portrait")
    made = photos.condition_photos(max_side=120)
    assert "as shipped" in made and len(made) == 6
    assert max(made["as shipped"].size) == 120
    gray = np.asarray(made["black and white"])
    assert (gray[..., 0] == gray[..., 2]).all()


class _Pipeline:
    """FacePipeline's surface that the chapter uses: annotate(photo) and crops(photo, result)."""

    def __init__(self, faces_per_photo):
        self.faces = faces_per_photo

    def annotate(self, photo):
        from faceprompt.demo.pipeline import FaceResult, FrameResult
        from faceprompt.predict import TaskPrediction

        n = self.faces[photo.size]
        label = {"gender": TaskPrediction("female", 0.9, {}), "emotion": TaskPrediction("fear", 0.3, {})}
        faces = [FaceResult((0, 0, 10, 10), 0.9, label, uncertain=["emotion"], crop="aligned") for _ in range(n)]
        return FrameResult(*photo.size, faces=faces)

    def crops(self, photo, result):
        return [Image.new("RGB", (8, 8)) for _ in result.faces]


def test_photos_and_their_crops_stay_on_one_line_and_faces_become_table_rows():
    one, three = Image.new("RGB", (30, 20)), Image.new("RGB", (31, 20))
    pipeline = _Pipeline({one.size: 1, three.size: 3})
    images, titles, cols, rows = photos.annotated_with_crops(pipeline, {"a": one, "b": one, "c": three}, cols=4,
                                                             size=16)
    assert cols == 4 and len(images) == len(titles) == 8  # [a, crop, b, crop] then [c, crop, crop, crop]
    assert titles[0].startswith("a:") and titles[2].startswith("b:") and titles[4].startswith("c:")
    assert all(image.size[0] <= 16 for image in images)
    assert len(rows) == 5 and rows[0] == {"photo": "a", "face": 1, "gender": "female", "emotion": "fear",
                                          "uncertain": "emotion"}


def test_a_photo_with_more_faces_than_columns_widens_the_grid():
    photo = Image.new("RGB", (30, 20))
    images, _, cols, _ = photos.annotated_with_crops(_Pipeline({photo.size: 5}), {"a": photo, "b": photo}, cols=4)
    assert cols == 6 and len(images) == 12


def test_agreement_counts_the_faces_with_each_known_label():
    rows = [{"gender": "female", "age": "70+"}, {"gender": "male", "age": "70+"}, {"gender": "female", "age": "20-29"}]
    assert photos.agreement(rows) == "gender right on 2 of 3 faces, age on 2 of 3"
    assert photos.agreement([]) == "gender right on 0 of 0 faces, age on 0 of 0"
    assert photos.PORTRAIT_TRUTH == {"gender": "female", "age": "70+"}


def test_face_table_is_indexed_by_photo_and_face():
    rows = [{"photo": "as shipped", "face": 1, "gender": "male"}, {"photo": "three sizes", "face": 2, "gender": "female"}]
    table = photos.face_table(rows)
    assert list(table.index) == [("as shipped", 1), ("three sizes", 2)] and list(table.columns) == ["gender"]
    assert photos.face_table([]).empty
