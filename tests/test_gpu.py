"""The GPU paths: bf16 autocast training, evaluation and resume on CUDA (skipped on a machine without one)."""
from __future__ import annotations

import math

import pytest
import torch

from engine_helpers import fit_then_crash, quick_config, synthetic_manifest, without_timing  # noqa: F401
from faceprompt.evaluate import evaluate
from faceprompt.training.loop import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

METHODS = [
    ("softcpt", {"context_tokens": 4, "task_context_tokens": 4}),
    ("vpt-ts", {"tokens": 4}),
    ("v2pt", {"tokens": 4}),
]


@pytest.mark.parametrize("method, options", METHODS)
def test_bf16_training_on_a_gpu_learns_and_evaluates(synthetic_manifest, tmp_path, method, options):  # noqa: F811
    cfg = quick_config(synthetic_manifest, tmp_path, method=method, method_options=options, epochs=3, lr=2e-2,
                       device="cuda", precision="auto")
    result = fit(cfg, progress=False)
    losses = [row["train_loss"] for row in result.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    metrics = evaluate(result.run_dir, device="cuda", progress=False).metrics
    assert set(metrics["task"]) == {"gender", "age", "emotion"}
    assert metrics["accuracy"].between(0, 1).all()


def test_gpu_resume_ends_like_an_uninterrupted_run(synthetic_manifest, tmp_path):  # noqa: F811
    options = dict(method="vpt", method_options={"tokens": 4}, device="cuda", precision="auto", epochs=3)
    whole = fit(quick_config(synthetic_manifest, tmp_path, run_id="whole", **options), progress=False)

    fit_then_crash(quick_config(synthetic_manifest, tmp_path, run_id="crashed", **options))
    resumed = fit(quick_config(synthetic_manifest, tmp_path, run_id="crashed", **options), resume=True,
                  progress=False)
    # GPU kernels need not be bitwise deterministic: the same numbers to bf16's precision.
    for a, b in zip(without_timing(whole.history), without_timing(resumed.history), strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float):
                assert value == pytest.approx(b[key], rel=2e-2, abs=2e-3), key
