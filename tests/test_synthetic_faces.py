"""Synthetic faces: deterministic, valid manifests, fast, and learnable but not trivially."""
import hashlib

import numpy as np
import pytest
from PIL import Image

from faceprompt.data.manifest import read_manifest
from faceprompt.data.synthetic_faces import FaceSpec, draw_face, make_synthetic_dataset
from faceprompt.tasks import AGE_BINS, EMOTIONS


def _digest(folder):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", n=20, size=64, seed=3)
    b = make_synthetic_dataset(tmp_path / "b", n=20, size=64, seed=3)
    c = make_synthetic_dataset(tmp_path / "c", n=20, size=64, seed=4)
    assert _digest(a.parent) == _digest(b.parent) != _digest(c.parent)


def test_image_i_does_not_depend_on_n(tmp_path):
    small = read_manifest(make_synthetic_dataset(tmp_path / "s", n=5, size=64))
    large = read_manifest(make_synthetic_dataset(tmp_path / "l", n=12, size=64))
    assert Image.open(small.path[4]).tobytes() == Image.open(large.path[4]).tobytes()
    assert small.drop(columns="path").equals(large.drop(columns="path").iloc[:5])


def test_manifest_is_complete_and_balanced(tmp_path):
    frame = read_manifest(make_synthetic_dataset(tmp_path, n=400, size=64, seed=0))
    assert len(frame) == 400 and set(frame.split) == {"train", "val", "test"}
    assert 0.6 < (frame.split == "train").mean() < 0.8
    assert set(frame.emotion) == set(EMOTIONS) and set(frame.age_bin) == set(AGE_BINS)
    assert frame.gender.value_counts().min() > 150
    ages = frame.age.astype(int)
    assert all(frame.age_bin[i] == AGE_BINS[[0, 3, 10, 20, 30, 40, 50, 60, 70].index(
        max(e for e in [0, 3, 10, 20, 30, 40, 50, 60, 70] if e <= a))] for i, a in enumerate(ages))
    assert Image.open(frame.path[0]).size == (64, 64)


def test_missing_labels_are_empty_strings(tmp_path):
    frame = read_manifest(make_synthetic_dataset(tmp_path, n=200, size=64, missing=0.3))
    for column in ("gender", "age_bin", "emotion"):
        assert 0.15 < (frame[column] == "").mean() < 0.45
    assert ((frame.age == "") == (frame.age_bin == "")).all()


def test_argument_checks(tmp_path):
    for bad in ({"n": 0}, {"size": 32}, {"size": 300}, {"missing": 1.0}):
        with pytest.raises(ValueError):
            make_synthetic_dataset(tmp_path, **bad)


def test_cues_are_visible():
    rng = lambda: np.random.default_rng(7)  # noqa: E731  same noise, only the label changes
    neutral = np.asarray(draw_face(FaceSpec("male", 30, "30-39", "neutral"), 128, rng()), float)
    happy = np.asarray(draw_face(FaceSpec("male", 30, "30-39", "happiness"), 128, rng()), float)
    female = np.asarray(draw_face(FaceSpec("female", 30, "30-39", "neutral"), 128, rng()), float)
    old = np.asarray(draw_face(FaceSpec("male", 75, "70+", "neutral"), 128, rng()), float)
    for other in (happy, female, old):
        assert np.abs(other - neutral).mean() > 1.0


def test_learnable_by_a_linear_model_but_not_trivially(tmp_path):
    from sklearn.linear_model import RidgeClassifier

    frame = read_manifest(make_synthetic_dataset(tmp_path, n=1000, size=64, seed=1))
    x = np.stack([np.asarray(Image.open(p).convert("L").resize((24, 24)), np.float32).ravel() / 255
                  for p in frame.path])
    train = (frame.split != "test").to_numpy()
    # Raw grey pixels into a linear model: above chance on every task, far from solved (a CNN does better).
    for column, floor in (("gender", 0.53), ("age_bin", 0.3), ("emotion", 0.22)):
        y = frame[column].to_numpy()
        accuracy = RidgeClassifier(alpha=10).fit(x[train], y[train]).score(x[~train], y[~train])
        assert floor < accuracy < 0.9, (column, accuracy)
