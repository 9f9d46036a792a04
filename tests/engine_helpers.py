"""Helpers for the training, evaluation and benchmark tests: tiny synthetic data and quick configs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from faceprompt.data.synthetic_faces import make_synthetic_dataset
from faceprompt.training.loop import TrainConfig

# Small enough for a 2-core machine: the tiny towers take 64 px images.
N_IMAGES = 96
IMAGE_SIZE = 64
TEXT_OPTIONS = {"context_tokens": 4, "task_context_tokens": 4}


@pytest.fixture(scope="session")
def synthetic_manifest(tmp_path_factory) -> Path:
    """96 synthetic faces at 64 px, about 70/15/15 train/val/test; a few labels blanked."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), n=N_IMAGES, size=IMAGE_SIZE, seed=0,
                                  missing=0.1)


def quick_config(manifest: Path, root: Path, **overrides) -> TrainConfig:
    """A fast config on a tiny tower: 48 training images, 2 epochs, batch 16, run folder and feature cache under ``root``."""
    base = dict(method="softcpt", method_options=dict(TEXT_OPTIONS), backbone="tiny-pe", train=[str(manifest)],
                epochs=2, batch_size=16, lr=1e-2, run_dir=str(root / "runs"), run_id="run",
                cache_dir=str(root / "cache"), patience=None, max_train_samples=48)
    base.update(overrides)
    return TrainConfig.from_dict(base)


class SimulatedCrash(Exception):
    pass


def fit_then_crash(config: TrainConfig, after_epoch: int = 1) -> None:
    """Train ``config`` until ``after_epoch``'s checkpoint is written, then die as a crash would."""
    from faceprompt.training.loop import fit

    def crash(epoch, record):
        if epoch == after_epoch:
            raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        fit(config, progress=False, on_epoch_end=crash)


def without_timing(history: list[dict]) -> list[dict]:
    """Epoch records minus wall-clock fields (timings differ between runs; nothing else may)."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def blank_column(manifest: Path, column: str, out: Path) -> Path:
    """A copy of a manifest with one label column emptied (absolute image paths)."""
    from faceprompt.data.manifest import read_manifest, write_manifest

    frame: pd.DataFrame = read_manifest(manifest)
    frame[column] = ""
    return write_manifest(frame, out)


def interruption_message(run) -> str:
    """The message of the errors.Interrupted that ``run()`` ends with; a bare KeyboardInterrupt (which would
    stop the whole test session) or no interruption at all fails the test instead."""
    from faceprompt.errors import Interrupted

    try:
        run()
    except Interrupted as err:
        return str(err)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped as a bare KeyboardInterrupt instead of errors.Interrupted")
    pytest.fail("the run was not interrupted")
