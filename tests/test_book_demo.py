"""The demo chapter's example photo (faceprompt.book.demo)."""
from __future__ import annotations

from book_runs import prepare_synthetic
from faceprompt.book import datasets as data
from faceprompt.book import demo


def test_example_photo_lays_test_faces_out_three_to_a_row(tmp_path):
    frame = data.manifest_frame(prepare_synthetic(tmp_path, n=60))
    faces = min(4, int((frame.split == "test").sum()))
    photo = demo.example_photo(frame, n=faces, face_size=40)
    gap = 40 // 4
    cols, rows = min(demo.MAX_COLUMNS, faces), -(-faces // demo.MAX_COLUMNS)
    assert photo.size == (cols * (40 + gap) + gap, rows * (40 + gap) + gap)
    assert photo.getpixel((1, 1)) == demo.BACKGROUND and photo.getpixel((gap + 20, gap + 20)) != demo.BACKGROUND


def test_demo_example_draws_what_the_app_found():
    from PIL import Image

    class App:  # the demo app's upload path: process(name, bytes) -> result or None
        def __init__(self, result):
            self.result, self.seen = result, None

        def process(self, name, payload):
            self.seen = (name, payload[:8])
            return self.result

    photo = Image.new("RGB", (20, 20), (1, 2, 3))
    app = App(None)
    assert demo.demo_example(app, photo) is photo and app.seen == ("example.png", b"\x89PNG\r\n\x1a\n")


def test_crop_comparison_shows_photo_box_and_aligned_crop_per_photo(tmp_path):
    import numpy as np
    from PIL import Image

    flat = tmp_path / "flat.png"
    Image.new("RGB", (90, 70), (120, 120, 120)).save(flat)  # no face: both crops are the centred square
    images, titles = demo.crop_comparison([flat, flat], size=32, detector="haar")
    assert len(images) == len(titles) == 6 and all(im.size == (32, 32) for im in images)
    assert titles[:2] == ["photo", "box crop"] and titles[2].startswith("aligned")
    assert np.array_equal(np.asarray(images[1]), np.asarray(images[2]))  # the fallback is the box crop


def test_older_faces_table_scores_each_gender_and_old_age_bin(tmp_path):
    import numpy as np

    from faceprompt.data.manifest import label_indices
    from faceprompt.predict import TaskPrediction

    class AlwaysOldMan:  # a FaceClassifier's predict: one dict of TaskPrediction per face
        def __init__(self):
            self.faces = 0

        def predict(self, faces):
            self.faces += len(faces)
            return [{"gender": TaskPrediction("male", 0.9, {}), "age": TaskPrediction("70+", 0.6, {})} for _ in faces]

    frame = data.manifest_frame(prepare_synthetic(tmp_path, n=160))
    test = data.test_rows(frame)
    bins = ("60-69", "70+")
    counted = test[(np.array(label_indices(test, "gender")) >= 0) & test["age_bin"].isin(bins).to_numpy()]
    classifier = AlwaysOldMan()
    table = demo.older_faces_table(classifier, frame, bins=bins, batch_size=3)
    assert classifier.faces == len(counted) == table["faces"].sum() > 0
    for (gender, age), row in table.iterrows():
        assert row["faces"] == ((counted["gender"] == gender) & (counted["age_bin"] == age)).sum()
        assert row["gender right"] == ("100%" if gender == "male" else "0%")
        assert row["age right"] == ("100%" if age == "70+" else "0%") and row["given 60-69 or older"] == "100%"
    assert list(table.index) == sorted(table.index, key=lambda k: (k[0] != "male", k[1]))
