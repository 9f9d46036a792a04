"""A profile's datasets: read with the shared folder filled in, preparing once, split and label tables, sample faces (faceprompt.book.datasets)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from book_runs import prepare_synthetic
from faceprompt.book import datasets as data
from faceprompt.book._machinery import glue as G
from faceprompt.locations import SHARED_DATA_ENV
from faceprompt.tasks import TASKS


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    work = tmp_path_factory.mktemp("book")
    return work, prepare_synthetic(work)


def test_a_dataset_is_prepared_once_until_its_options_change(prepared):
    work, manifests = prepared
    manifest = work / "data" / "synthetic" / "manifest.csv"
    assert manifests == {"synthetic": str(manifest)}
    stamp = json.loads((manifest.parent / data.PREPARE_STAMP).read_text())
    assert stamp == {"name": "synthetic", "root": None, "options": {"n": 40, "size": 32}}
    before = manifest.stat().st_mtime_ns
    prepare_synthetic(work)
    assert manifest.stat().st_mtime_ns == before  # same options: not prepared again


def test_split_table_and_label_counts(prepared):
    _, manifests = prepared
    frame = data.manifest_frame(manifests)
    splits = data.glue_data_summary(frame, [{"name": "synthetic", "n": 40}])
    assert list(splits["split"]) == ["train", "val", "test"] and splits["rows"].sum() == len(frame) == 40
    assert G.GLUED["data-rows"] == "40" and G.GLUED["data-source"] == "synthetic faces"
    counts = data.label_counts(frame)
    emotion = counts[(counts.task == "emotion") & (counts.split == "train")]
    assert list(emotion["class"]) == list(TASKS["emotion"].classes)  # every class, zeros kept
    assert emotion["count"].sum() == (frame[frame.split == "train"]["emotion"] != "").sum()


def test_sample_faces_come_from_the_test_split(prepared):
    _, manifests = prepared
    frame = data.manifest_frame(manifests)
    images, titles = data.sample_faces(frame, n=12)
    assert len(images) == len(titles) == (frame.split == "test").sum()
    assert data.test_rows(frame[frame.split == "train"]).equals(frame[frame.split == "train"])


def test_dataset_specs_and_the_data_source_phrase():
    spec = data.DatasetSpec.parse({"name": "utkface", "root": "/d/UTKFace", "size": 64})
    assert spec == data.DatasetSpec("utkface", "/d/UTKFace", {"size": 64})
    with pytest.raises(ValueError, match="expected a name"):
        data.DatasetSpec.parse({"root": "/x"})
    assert data.data_source(["utkface", {"name": "facial_expressions"}]) == "real faces: utkface, facial_expressions"
    assert data.data_source(["utkface", "synthetic"]) == "real faces: utkface and synthetic faces"
    assert data.data_source([{"name": "utkface", "splits": ["val", "test"]}]) == \
        "real faces: utkface (val and test splits)"


def test_dataset_entries_get_the_shared_folder_in_every_string(tmp_path, monkeypatch):
    entries = [{"name": "facial_expressions", "root": "{shared}/fe", "lfw_lists": "{shared}/LFW",
                "splits": ["val", "{shared}"]}, "synthetic"]
    assert data.parse_datasets(entries, tmp_path) == [
        data.DatasetSpec("facial_expressions", f"{tmp_path}/fe",
                         {"lfw_lists": f"{tmp_path}/LFW", "splits": ["val", str(tmp_path)]}),
        data.DatasetSpec("synthetic")]
    assert entries[0]["root"] == "{shared}/fe"  # the profile's own entries are left as written
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path / "elsewhere"))
    assert data.parse_datasets(entries)[0].root == str((tmp_path / "elsewhere").resolve() / "fe")


def test_split_table_orders_splits_within_datasets():
    frame = pd.DataFrame({"dataset": ["b", "a", "a", "a"], "split": ["test", "test", "train", "val"],
                          "gender": ["male", "", "female", ""], "age_bin": [""] * 4, "emotion": [""] * 4})
    table = data.split_table(frame)
    assert list(zip(table["dataset"], table["split"])) == [("a", "train"), ("a", "val"), ("a", "test"),
                                                            ("b", "test")]
    assert table["gender labelled"].tolist() == [1, 0, 0, 1]
