"""The held-out check against a pretrained model's recorded split (faceprompt.book.leakage)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from book_runs import prepare_synthetic
from faceprompt.book._machinery import glue as G
from faceprompt.book import leakage
from faceprompt.data.splits import read_splits


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    return prepare_synthetic(tmp_path_factory.mktemp("leak"))


def recorded_as(manifests, test_split: str) -> pd.DataFrame:
    """A model record that holds out our test images (``test_split`` "test") or trained on them."""
    ours = read_splits(Path(manifests["synthetic"]).parent / "splits.csv")
    return pd.DataFrame([{"dataset": "synthetic", "key": k, "split": test_split if s == "test" else s}
                         for k, s in ours.items()])


def test_test_images_the_model_held_out_pass(manifests):
    table = leakage.held_out_check(manifests, "some-model", recorded_as(manifests, "test"))
    row = table.iloc[0]
    assert row["model trained on"] == 0 and row["model held out"] == row["test rows"] > 0
    assert G.GLUED["heldout-summary"].startswith("None of the test images of synthetic")


def test_a_test_image_the_model_trained_on_is_refused(manifests):
    with pytest.raises(ValueError, match="were in some-model's training"):
        leakage.held_out_check(manifests, "some-model", recorded_as(manifests, "train"))


def test_a_model_without_a_record_is_reported_unchecked(manifests):
    assert leakage.model_splits("tiny-pe") is None
    table = leakage.held_out_check(manifests, "tiny-pe")
    assert table["model trained on"].isna().all()
    assert G.GLUED["heldout-summary"] == "tiny-pe records no pretraining split for these datasets; nothing to check."


def test_faceclip_tiny_ships_its_split_record():
    splits = leakage.model_splits("faceclip-tiny")
    assert set(splits.columns) == {"dataset", "key", "split"}
    assert set(splits["split"]) == {"train", "val", "test"}


def test_the_adaptation_check_refuses_a_target_whose_labels_pretraining_read():
    from faceprompt.book.leakage import adaptation_check

    roles = {"pretraining_labels": {"utkface": ["age", "gender"], "facial_expressions": ["emotion", "gender"]},
             "adaptation_labels": ["ferplus:emotion"]}
    assert "never read any emotion label of ferplus" in adaptation_check(
        "faceclip-tiny", {"dataset": "ferplus", "task": "emotion"}, roles)
    other = adaptation_check("faceclip-tiny", {"dataset": "synthetic", "task": "emotion"}, roles)
    assert "never read any emotion label of synthetic" in other and "not the target the recipe held out" in other
    with pytest.raises(ValueError, match="pretraining read facial_expressions's emotion labels"):
        adaptation_check("faceclip-tiny", {"dataset": "facial_expressions", "task": "emotion"}, roles)
    assert "records no pretraining roles" in adaptation_check("tiny-pe", {"dataset": "x", "task": "age"}, None)
