"""Evaluation metrics against hand-computed values, the tables, and evaluate end to end."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from engine_helpers import quick_config, synthetic_manifest  # noqa: F401  (fixture)
from faceprompt import metrics as M
from faceprompt.cli import main as cli
from faceprompt.evaluate import evaluation_tables

Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0])


def test_classification_metrics_equal_hand_computed_values():
    assert M.accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    assert M.confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # recalls 1/2, 2/2, 1/2
    assert M.balanced_accuracy(Y_TRUE, Y_PRED, 3) == pytest.approx(2 / 3)
    # F1: class 0 = 2*1/(2*1+1+1) = 0.5, class 1 = 4/5, class 2 = 2/3
    assert M.macro_f1(Y_TRUE, Y_PRED, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert M.balanced_accuracy(Y_TRUE, Y_PRED, 3) == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED))
    assert M.macro_f1(Y_TRUE, Y_PRED, 3) == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))


def test_balanced_accuracy_skips_classes_absent_from_the_truth():
    assert M.balanced_accuracy(np.array([0, 0, 1]), np.array([0, 2, 1]), 5) == pytest.approx((0.5 + 1.0) / 2)


def test_ece_equals_hand_computed_value():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    y_true = np.array([0, 1, 1])  # conf 0.9 right, 0.9 wrong, 0.6 right
    assert M.expected_calibration_error(probs, y_true, n_bins=10) == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.4)
    perfect = np.eye(3)
    assert M.expected_calibration_error(perfect, np.arange(3)) == pytest.approx(0.0)


def test_ordinal_metrics():
    y_true, y_pred = np.array([0, 3, 5]), np.array([1, 3, 8])
    assert M.one_off_accuracy(y_true, y_pred) == pytest.approx(2 / 3)
    assert M.mean_absolute_bin_error(y_true, y_pred) == pytest.approx(4 / 3)


def test_tables_per_dataset_skip_missing_labels_and_measure_race_gaps():
    frame = pd.DataFrame({
        "dataset": ["utkface"] * 4 + ["rafdb"] * 2,
        "gender": ["male", "female", "male", "", "", ""],
        "age_bin": ["20-29", "30-39", "70+", "0-2", "", ""],
        "emotion": ["", "", "", "", "happiness", "anger"],
        "race": ["White", "White", "Black", "Black", "", ""],
    })
    eye = np.eye(9)
    probs = {
        "gender": np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]),
        # predicted bins 3 (right), 3 (one off), 8 (right), 2 (two off)
        "age": np.stack([eye[3], eye[3], eye[8], eye[2], eye[0], eye[0]]),
        "emotion": np.stack([np.eye(7)[3]] * 6),  # always happiness
    }
    metrics, confusion, fairness = evaluation_tables(frame, probs)
    rows = {(r.dataset, r.task): r for r in metrics.itertuples()}
    assert set(rows) == {("utkface", "gender"), ("utkface", "age"), ("rafdb", "emotion")}
    gender = rows[("utkface", "gender")]
    assert gender.n == 3 and gender.accuracy == pytest.approx(2 / 3)
    # White: 2/2 right, Black: 0/1 -> gap 1
    assert gender.fairness_gap == pytest.approx(1.0)
    age = rows[("utkface", "age")]
    assert age.accuracy == pytest.approx(0.5)
    assert age.one_off_accuracy == pytest.approx(0.75)
    assert age.mean_abs_bin_error == pytest.approx((0 + 1 + 0 + 2) / 4)
    assert rows[("rafdb", "emotion")].accuracy == pytest.approx(0.5)
    assert np.isnan(rows[("rafdb", "emotion")].fairness_gap)
    cells = confusion[(confusion.dataset == "utkface") & (confusion.task == "gender")]
    assert len(cells) == 4 and cells["count"].sum() == 3
    white = fairness[(fairness.task == "gender") & (fairness.group == "White")]
    assert white["accuracy"].item() == 1.0 and white["n"].item() == 2


def test_train_then_evaluate_and_zero_shot_write_the_same_tables(synthetic_manifest, tmp_path):  # noqa: F811
    from faceprompt.training.loop import fit

    result = fit(quick_config(synthetic_manifest, tmp_path, epochs=1), progress=False)
    assert cli(["evaluate", str(result.run_dir), "--split", "test", "val", "--quiet",
                "--cache-dir", str(tmp_path / "cache")]) == 0
    trained = pd.read_csv(result.run_dir / "eval" / "metrics.csv")
    assert set(trained["task"]) == {"gender", "age", "emotion"}
    assert (trained["added_parameters"] > 0).all() and (trained["method"] == "softcpt").all()
    assert json.loads((result.run_dir / "eval" / "summary.json").read_text())["splits"] == ["test", "val"]
    zero = tmp_path / "zero-shot"
    assert cli(["evaluate", "--zero-shot", "--backbone", "tiny-pe", "--manifest", str(synthetic_manifest),
                "--split", "test", "val", "--out", str(zero), "--quiet"]) == 0
    baseline = pd.read_csv(zero / "eval" / "metrics.csv")
    assert (baseline["added_parameters"] == 0).all()
    assert list(baseline.columns) == list(trained.columns)
    assert baseline["n"].tolist() == trained["n"].tolist()  # the same rows, like for like
    bins = pd.read_csv(result.run_dir / "eval" / "reliability.csv")
    for _, row in trained.iterrows():  # the kept bins hold every labelled row and give back the ECE
        cell = bins[(bins.dataset == row["dataset"]) & (bins.task == row["task"])]
        assert cell["count"].sum() == row["n"]
        gaps = (cell["count"] / row["n"] * (cell["accuracy"] - cell["confidence"]).abs()).sum()
        assert gaps == pytest.approx(row["ece"], abs=1e-9)


def test_evaluate_names_a_missing_manifest(tmp_path):
    assert cli(["evaluate", "--zero-shot", "--backbone", "tiny-pe", "--manifest", str(tmp_path / "nope.csv"),
                "--out", str(tmp_path / "zs")]) == 1
    assert not (tmp_path / "zs").exists()


@pytest.mark.shared_data
def test_train_and_evaluate_on_utkface_and_facial_expressions(shared_data, tmp_path):
    from faceprompt.training.loop import fit

    from faceprompt.data.prepare import prepare_dataset

    utk, fer = tmp_path / "utkface", tmp_path / "fer"
    common = dict(limit=60, size=64, detect=False, workers=1, progress=False)
    prepare_dataset("utkface", shared_data / "UTKFace", utk, **common)
    prepare_dataset("facial_expressions", shared_data / "facial_expressions", fer, lfw_lists=shared_data / "LFW",
                    **common)
    config = quick_config(utk / "manifest.csv", tmp_path, epochs=1, train=[
        {"manifest": str(utk / "manifest.csv"), "splits": ["train"]},
        {"manifest": str(fer / "manifest.csv"), "splits": ["train"]}])
    result = fit(config, progress=False)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["train_loss"])
    assert cli(["evaluate", str(result.run_dir), "--split", "train", "val", "test", "--quiet"]) == 0
    metrics = pd.read_csv(result.run_dir / "eval" / "metrics.csv")
    assert {"utkface", "facial_expressions"} <= set(metrics["dataset"])
    assert set(metrics[metrics.dataset == "facial_expressions"]["task"]) >= {"emotion"}
    fairness = pd.read_csv(result.run_dir / "eval" / "fairness.csv")
    assert "utkface" in set(fairness["dataset"])  # UTKFace carries race labels


def test_evaluate_writes_a_confusion_figure_per_task_and_the_age_offsets(synthetic_manifest, tmp_path):  # noqa: F811
    from PIL import Image

    out = tmp_path / "zero-shot"
    assert cli(["evaluate", "--zero-shot", "--backbone", "tiny-pe", "--manifest", str(synthetic_manifest),
                "--split", "test", "--out", str(out), "--quiet"]) == 0
    folder = out / "eval"
    figures = [folder / f"confusion_{task}.png" for task in ("gender", "age", "emotion")] + [folder / "age_offsets.png"]
    for path in figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        with Image.open(path) as image:
            image.verify()
    assert not list(folder.glob(".*.tmp"))  # written through a temporary file, nothing left behind
    offsets = pd.read_csv(folder / "age_offsets.csv", index_col=0)
    ages = pd.read_csv(folder / "metrics.csv").set_index("task").loc["age", "n"]
    assert offsets.to_numpy().sum() == ages and list(offsets.columns) == [str(k) for k in range(-8, 9)]


def test_evaluate_warns_of_repeated_rows_and_of_test_images_also_in_train(tmp_path, caplog):
    import pandas as pd

    from faceprompt.data.manifest import read_manifest, write_manifest
    from faceprompt.data.synthetic_faces import make_synthetic_dataset
    from faceprompt.evaluate import evaluate_zero_shot

    manifest = make_synthetic_dataset(tmp_path / "syn", n=24, size=64, seed=0)
    frame = read_manifest(manifest)
    test_row = frame[frame.split == "test"].iloc[[0]]
    leaked = test_row.assign(split="train")
    write_manifest(pd.concat([frame, test_row, leaked], ignore_index=True), tmp_path / "syn" / "dup.csv")
    with caplog.at_level("WARNING"):
        evaluate_zero_shot("tiny-pe", [str(tmp_path / "syn" / "dup.csv")], tmp_path / "zs", progress=False,
                           cache_dir=None)
    text = caplog.text
    assert "1 image(s) listed more than once (2 rows" in text
    assert "1 image(s) also in the train split" in text and test_row.path.iloc[0] in text


def test_the_concordance_index_is_the_share_of_answers_shared_with_the_baseline():
    from faceprompt.metrics import concordance_index

    assert concordance_index([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    with pytest.raises(ValueError, match="concordance"):
        concordance_index([0, 1], [0])


def test_evaluate_gives_the_concordance_with_the_thesis_baseline_and_zero_shot_takes_its_sentences(tmp_path,
                                                                                                  capsys):
    import json

    from faceprompt.cli import main
    from faceprompt.data.synthetic_faces import make_synthetic_dataset

    manifest = make_synthetic_dataset(tmp_path / "syn", n=24, size=64, seed=0)
    assert main(["evaluate", "--zero-shot", "--backbone", "tiny-pe", "--sentences", "thesis", "--manifest",
                 str(manifest), "--out", str(tmp_path / "zs"), "--quiet", "--cache-dir", ""]) == 0
    config = json.loads((tmp_path / "zs" / "config.json").read_text())
    assert config["method_config"]["text"]["sentences"] == "thesis"
    # The thesis baseline against itself agrees everywhere.
    assert main(["evaluate", str(tmp_path / "zs"), "--manifest", str(manifest), "--out", str(tmp_path / "again"),
                 "--concordance", "--quiet", "--cache-dir", ""]) == 0
    metrics = json.loads((tmp_path / "again" / "eval" / "metrics.json").read_text())
    assert metrics and all(row["concordance"] == 1.0 for row in metrics)
