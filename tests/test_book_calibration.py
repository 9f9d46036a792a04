"""Reliability curves on ECE's own bins (faceprompt.book.calibration)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faceprompt.book import calibration
from faceprompt.metrics import expected_calibration_error
from engine_helpers import quick_config, synthetic_manifest  # noqa: F401


@pytest.mark.parametrize("n_bins", [calibration.ECE_BINS, 10, 4])
def test_the_curve_rows_add_up_to_the_metrics_ece(n_bins):
    rng = np.random.default_rng(n_bins)
    logits = rng.normal(size=(500, 7)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 7, 500)
    rows = calibration.reliability_rows(probs, labels, n_bins)
    assert rows["count"].sum() == 500 and len(rows) <= n_bins
    ece = float((rows["count"] / 500 * (rows["accuracy"] - rows["confidence"]).abs()).sum())
    assert ece == pytest.approx(expected_calibration_error(probs, labels, n_bins))


def test_bins_are_closed_on_the_right():
    assert calibration.ECE_BINS == 15
    edges = np.array([0.0, 0.25, 0.2500001, 0.5, 1.0])
    assert list(calibration.confidence_bins(edges, 4)) == [0, 0, 1, 1, 3]


def test_pooled_bins_are_the_bins_of_the_pooled_predictions():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(7) * 0.5, size=400)
    labels = rng.integers(0, 7, 400)
    parts = [calibration.reliability_rows(probs[a:b], labels[a:b]) for a, b in [(0, 150), (150, 400)]]
    pooled = calibration.pool_bins(pd.concat(parts, ignore_index=True))
    whole = calibration.reliability_rows(probs, labels)
    pd.testing.assert_frame_equal(pooled[whole.columns].reset_index(drop=True), whole, check_dtype=False)


def test_curves_come_from_the_evaluated_seed_0_runs(synthetic_manifest, tmp_path):
    from faceprompt.book.runs import train_and_evaluate
    from faceprompt.evaluate import EVAL_DIR

    for seed in (0, 1):
        config = quick_config(synthetic_manifest, tmp_path, method="vpt", method_options={}, epochs=1,
                              run_id=f"vpt-seed{seed}", seed=seed)
        train_and_evaluate(config)
    saved = pd.read_csv(tmp_path / "runs" / "vpt-seed0" / EVAL_DIR / "reliability.csv")
    emotion = saved[saved.task == "emotion"]
    curves = calibration.reliability_curves(tmp_path / "runs", "emotion")
    assert set(curves["method"]) == {"vpt"}
    assert curves["count"].sum() == emotion["count"].sum()  # one seed's test rows, not both runs pooled
    assert list(curves["confidence"]) == sorted(curves["confidence"])
    assert calibration.reliability_curves(tmp_path / "empty", "emotion").empty
