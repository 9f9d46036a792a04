"""The demo chapter's example: a photo made of test faces, run through the demo app like an upload."""
from __future__ import annotations

import io

import pandas as pd

from faceprompt.book.datasets import test_rows

BACKGROUND = (200, 200, 200)
MAX_COLUMNS = 3


def example_photo(frame: pd.DataFrame, n: int = 6, face_size: int = 160, seed: int = 0):
    """A 'group photo' (PIL) of ``n`` test faces on a grey canvas, at most three to a row."""
    from PIL import Image

    from faceprompt.data.images import load_rgb

    pool = test_rows(frame)
    paths = list(pool.sample(min(n, len(pool)), random_state=seed)["path"])
    cols = min(MAX_COLUMNS, len(paths))
    rows = -(-len(paths) // cols)
    gap = face_size // 4
    canvas = Image.new("RGB", (cols * (face_size + gap) + gap, rows * (face_size + gap) + gap), BACKGROUND)
    for i, path in enumerate(paths):
        face = load_rgb(path).resize((face_size, face_size))
        canvas.paste(face, (gap + (i % cols) * (face_size + gap), gap + (i // cols) * (face_size + gap)))
    return canvas


def demo_example(app, photo):
    """Run ``photo`` through the demo app as if uploaded; returns the annotated image (or the photo)."""
    from faceprompt.demo.pipeline import draw

    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    result = app.process("example.png", buffer.getvalue())
    return photo if result is None else draw(photo, result)


def crop_comparison(paths: list, size: int = 160, detector: str | None = None) -> tuple[list, list[str]]:
    """For each photo: the photo, its box crop and its aligned crop (``align.face_crop``), with titles;
    for ``viz.image_grid(images, titles, cols=3)``. The largest detected face is cropped; a photo
    without one is cropped whole. An aligned crop that fell back is titled so."""
    import numpy as np

    from faceprompt.align import face_crop
    from faceprompt.data.images import load_rgb
    from faceprompt.detect import DEFAULT_DETECTOR, get_detector, pick_face

    find = get_detector(detector or DEFAULT_DETECTOR)
    images, titles = [], []
    for path in paths:
        photo = load_rgb(path)
        face = pick_face(find.detect(np.asarray(photo)))
        aligned = face_crop(photo, face, size, "aligned")
        images += [photo.resize((size, size)), face_crop(photo, face, size, "box").image, aligned.image]
        titles += ["photo", "box crop",
                   "aligned crop" if not aligned.fell_back else f"aligned: fell back ({aligned.reason})"]
    return images, titles


def crop_example_paths(frame: pd.DataFrame, n: int = 4, seed: int = 0) -> list:
    """``n`` held-out photos from the shared facial_expressions folder when it is here (real photos, faces
    at many angles), else ``n`` test images of the prepared datasets."""
    from faceprompt.locations import shared_dataset

    folder = shared_dataset("facial_expressions") / "images"
    photos = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if photos:
        import random

        return random.Random(seed).sample(photos, min(n, len(photos)))
    return list(test_rows(frame).sample(min(n, len(test_rows(frame))), random_state=seed)["path"])


OLDER_BINS = ("50-59", "60-69", "70+")


def older_faces_table(classifier, frame: pd.DataFrame, bins: tuple[str, ...] = OLDER_BINS,
                      batch_size: int = 64) -> pd.DataFrame:
    """The classifier (``predict.FaceClassifier``) on the test faces labelled with a gender and one of the
    age ``bins``, per gender and bin: how many, the share whose gender and whose age bin it gets right, and
    the share it puts in one of ``bins`` at all. It tells whether an error on a portrait of an old face is
    the model's habit or that photo's."""
    import numpy as np

    from faceprompt.data.images import load_rgb
    from faceprompt.data.manifest import label_indices
    from faceprompt.tasks import TASKS

    rows = test_rows(frame)
    genders, ages = TASKS["gender"].classes, TASKS["age"].classes
    gender, age = np.array(label_indices(rows, "gender")), np.array(label_indices(rows, "age"))
    keep = (gender >= 0) & np.isin(age, [ages.index(b) for b in bins])
    paths, gender, age = list(rows["path"][keep]), gender[keep], age[keep]
    predicted = [p for start in range(0, len(paths), batch_size)
                 for p in classifier.predict([load_rgb(path) for path in paths[start:start + batch_size]])]
    table = pd.DataFrame({"gender": [genders[g] for g in gender], "age": [ages[a] for a in age],
                          "gender right": [p["gender"].label == genders[g] for p, g in zip(predicted, gender)],
                          "age right": [p["age"].label == ages[a] for p, a in zip(predicted, age)],
                          f"given {bins[0]} or older": [p["age"].label in bins for p in predicted]})
    if table.empty:
        return pd.DataFrame(columns=["faces", *table.columns[2:]])
    grouped = table.groupby(["gender", "age"], sort=False)
    summary = grouped.mean().map(lambda share: f"{100 * share:.0f}%")
    summary.insert(0, "faces", grouped.size())
    order = [(g, b) for g in genders for b in bins if (g, b) in summary.index]
    return summary.reindex(order)


def zero_shot_pipeline(pipeline):
    """The same detector, crop and label rules with the bare backbone's hand-written prompts: what the
    tuned run changes, and nothing else."""
    import copy

    from faceprompt.predict import FaceClassifier

    bare = copy.copy(pipeline)
    bare.classifier = FaceClassifier.load(pipeline.classifier.backbone, zero_shot=True)
    return bare


def side_by_side(tuned_rows: list[dict], bare_rows: list[dict]) -> pd.DataFrame:
    """``photos.face_table`` of the tuned and of the zero-shot pipeline on the same photos, one column
    group each (the faces are found by the same detector, so the rows line up)."""
    from faceprompt.book import photos

    tuned, bare = photos.face_table(tuned_rows), photos.face_table(bare_rows)
    return pd.concat({"tuned": tuned, "zero-shot": bare}, axis=1)


def age_gender_comparison(tuned, bare, frame: pd.DataFrame) -> pd.DataFrame:
    """``older_faces_table`` over every age bin for two classifiers (tuned, then zero-shot), side by side."""
    from faceprompt.tasks import AGE_BINS

    every_bin = f"given {AGE_BINS[0]} or older"  # always 100% over every bin: says nothing here
    return pd.concat({"tuned": older_faces_table(tuned, frame, bins=AGE_BINS).drop(columns=every_bin),
                      "zero-shot": older_faces_table(bare, frame, bins=AGE_BINS).drop(columns=every_bin)}, axis=1)
