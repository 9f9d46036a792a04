"""Reliability curves on ECE's own bins (faceprompt.book.calibration)."""
from __future__ import annotations

import numpy as np
import pytest

from faceprompt.book import calibration
from faceprompt.metrics import expected_calibration_error


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
