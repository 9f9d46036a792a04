"""The thesis's 80/20 cut of each training set and its rounding of ages to bins (``val_split``, ``age_binning``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine_helpers import synthetic_manifest  # noqa: F401
from faceprompt.data.manifest import read_manifest, with_age_binning, write_manifest
from faceprompt.data.splits import thesis_split
from faceprompt.tasks import age_to_bin
from faceprompt.training.config import TrainConfig
from faceprompt.training.data import load_frames


# --- ages to bins --------------------------------------------------------------------------------------

@pytest.mark.parametrize("age, floor, rounded", [
    (19.6, "10-19", "20-29"), (19.4, "10-19", "10-19"), (2.7, "0-2", "3-9"), (69.5, "60-69", "70+"),
    # Python's round takes halves to the even year, as the thesis's map_age_to_group does
    (2.5, "0-2", "0-2"), (9.5, "3-9", "10-19"), (19.5, "10-19", "20-29"), (0.4, "0-2", "0-2"), (30, "30-39", "30-39"),
])
def test_rounding_moves_an_age_to_the_nearest_years_bin(age, floor, rounded):
    assert age_to_bin(age) == age_to_bin(age, "floor") == floor
    assert age_to_bin(age, "round") == rounded


def test_an_unknown_binning_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="floor"):
        age_to_bin(20, "ceil")


def test_with_age_binning_rebins_given_ages_and_keeps_a_bin_given_alone():
    frame = pd.DataFrame({"age": ["19.6", "", "45", "2.5"], "age_bin": ["10-19", "60-69", "40-49", "0-2"]})
    assert with_age_binning(frame, "floor") is frame  # a read manifest's bins are already the floor's
    rounded = with_age_binning(frame, "round")
    assert list(rounded["age_bin"]) == ["20-29", "60-69", "40-49", "0-2"]
    assert list(frame["age_bin"]) == ["10-19", "60-69", "40-49", "0-2"]  # the input is left as it was


# --- the 80/20 cut -------------------------------------------------------------------------------------

def _rows(seed: int = 0) -> pd.DataFrame:
    """Two datasets: large strata, small strata and single rows, some labels missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for dataset, n in (("fairface", 3000), ("rafdb", 1330)):
        for i in range(n):
            gender = rng.choice(["male", "female", ""])
            bin_ = rng.choice(["20-29", "30-39", "70+"]) if dataset == "fairface" else ""
            emotion = rng.choice(["happiness", "fear"]) if dataset == "rafdb" else ""
            rows.append({"path": f"/data/{dataset}/crops/train/{i:05d}.jpg", "dataset": dataset,
                         "gender": gender, "age_bin": bin_, "emotion": emotion})
    # strata of one and two rows
    rows.append({"path": "/data/rafdb/crops/train/lone.jpg", "dataset": "rafdb", "gender": "male", "age_bin": "0-2",
                 "emotion": "anger"})
    rows += [{"path": f"/data/rafdb/crops/train/pair{i}.jpg", "dataset": "rafdb", "gender": "female",
              "age_bin": "0-2", "emotion": "anger"} for i in range(2)]
    return pd.DataFrame(rows)


def test_each_dataset_is_cut_80_20_and_every_repeated_stratum_is_validated_on():
    frame = _rows()
    held = thesis_split(frame)
    for dataset, rows in frame.groupby("dataset"):
        assert held[rows.index].sum() == round(len(rows) * (1 - 0.8))  # 3000 -> 600, 1333 -> 267
        for label, stratum in rows.groupby(["gender", "age_bin", "emotion"]):
            share = held[stratum.index].mean()
            if len(stratum) > 1:
                assert held[stratum.index].any(), (dataset, label)
            if len(stratum) >= 200:  # the rest is drawn at random: about a fifth of every large stratum
                assert 0.12 <= share <= 0.28, (dataset, label, share)


def test_the_cut_is_fixed_by_its_seed_not_by_row_order_or_folder():
    frame = _rows()
    held = thesis_split(frame)
    assert np.array_equal(held, thesis_split(frame))
    shuffled = frame.sample(frac=1.0, random_state=1)
    moved = shuffled.assign(path=shuffled["path"].str.replace("/data/", "/elsewhere/data/"))
    again = pd.Series(thesis_split(moved), index=shuffled.index).sort_index().to_numpy()
    assert np.array_equal(again, held)
    other = thesis_split(frame, seed=7)
    assert not np.array_equal(other, held) and other.sum() == held.sum()


def test_strata_that_outnumber_the_target_all_get_a_validation_row():
    frame = pd.DataFrame({"path": [f"/d/{i}.jpg" for i in range(10)], "dataset": "x", "gender": "",
                          "age_bin": [f"{b}" for b in ["0-2", "3-9", "10-19", "20-29", "30-39"] * 2], "emotion": ""})
    assert thesis_split(frame).sum() == 5  # five strata of two rows: five, though a fifth of 10 is 2


# --- in a run ------------------------------------------------------------------------------------------

def test_the_thesis_protocol_selects_its_split_and_rounding_the_default_neither(synthetic_manifest):  # noqa: F811
    manifest = str(synthetic_manifest)
    thesis = TrainConfig.from_dict({"protocol": "thesis", "train": [manifest]})
    assert (thesis.val_split, thesis.age_binning) == ("thesis", "round")
    default = TrainConfig.from_dict({"train": [manifest]})
    assert (default.val_split, default.age_binning) == ("manifest", "floor")
    own_val = TrainConfig.from_dict({"protocol": "thesis", "train": [manifest], "val": [manifest]})
    assert (own_val.val_split, own_val.age_binning) == ("manifest", "round")  # the config's val rows are kept
    with pytest.raises(ValueError, match="val_split"):
        TrainConfig.from_dict({"train": [manifest], "val": [manifest], "val_split": "thesis"}).validate()
    with pytest.raises(ValueError, match="age_binning"):
        TrainConfig.from_dict({"train": [manifest], "age_binning": "ceil"}).validate()


def _with_fractional_age(manifest, tmp_path, split="train"):
    frame = read_manifest(manifest)
    row = frame.index[(frame["split"] == split) & (frame["age"] != "")][0]
    frame.loc[row, ["age", "age_bin"]] = ["19.6", "10-19"]
    path = tmp_path / "manifest.csv"
    write_manifest(frame, path)
    return path, frame.loc[row, "path"]


def test_a_thesis_run_pools_train_and_val_rows_and_rounds_ages(synthetic_manifest, tmp_path):  # noqa: F811
    path, image = _with_fractional_age(synthetic_manifest, tmp_path)
    rows = read_manifest(path)
    pool = rows[rows["split"].isin(["train", "val"])]
    train, val = load_frames(TrainConfig.from_dict({"protocol": "thesis", "train": [str(path)]}))
    assert not set(train["path"]) & set(val["path"])
    assert sorted([*train["path"], *val["path"]]) == sorted(pool["path"])
    assert len(val) == round(len(pool) * (1 - 0.8))
    both = pd.concat([train, val])
    assert both.loc[both["path"] == image, "age_bin"].item() == "20-29"
    train, val = load_frames(TrainConfig.from_dict({"train": [str(path)]}))  # the default: as the manifest says
    assert sorted(train["path"]) == sorted(rows.loc[rows["split"] == "train", "path"])
    assert sorted(val["path"]) == sorted(rows.loc[rows["split"] == "val", "path"])
    assert train.loc[train["path"] == image, "age_bin"].item() == "10-19"


def test_evaluation_bins_ages_as_the_run_trained_unless_told(synthetic_manifest, tmp_path):  # noqa: F811
    from engine_helpers import quick_config
    from faceprompt.evaluate import evaluate
    from faceprompt.training.loop import fit

    path, _ = _with_fractional_age(synthetic_manifest, tmp_path, split="test")
    run = fit(quick_config(path, tmp_path, protocol="thesis", epochs=1, precision="fp32", max_train_samples=16,
                           task_balance={}), progress=False).run_dir
    rounded, floor = evaluate(run, progress=False), evaluate(run, progress=False, age_binning="floor")
    assert (rounded.summary["age_binning"], floor.summary["age_binning"]) == ("round", "floor")

    def true_ages(result):
        table = result.confusion[result.confusion["task"] == "age"]
        return table.groupby("true")["count"].sum()

    moved = true_ages(rounded) - true_ages(floor)  # the test face of 19.6 years: 10-19 by floor, 20-29 rounded
    assert (moved["20-29"], moved["10-19"]) == (1, -1) and (moved.drop(["20-29", "10-19"]) == 0).all()
    from faceprompt.cli import main as cli
    from faceprompt.io import read_json

    assert cli(["evaluate", str(run), "--age-binning", "floor", "--quiet"]) == 0
    assert read_json(run / "eval" / "summary.json")["age_binning"] == "floor"


def test_a_thesis_run_may_still_skip_validation(synthetic_manifest):  # noqa: F811
    cfg = TrainConfig.from_dict({"protocol": "thesis", "train": [str(synthetic_manifest)], "val": []})
    train, val = load_frames(cfg)  # no val rows: nothing to bin there
    assert len(val) == 0 and cfg.val_split == "manifest" and cfg.age_binning == "round"
