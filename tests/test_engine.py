"""The training engine: schedule, checkpoint with every random state (no pickle), recipe checks, interruption."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from faceprompt.engine import state as engine_state
from faceprompt.engine.optim import decay_groups, make_optimizer, optimizer_step
from faceprompt.engine.progress import interruptible
from faceprompt.engine.runtime import LocalRuntime
from faceprompt.engine.schedule import lr_at, warmup_cosine
from faceprompt.engine.seeding import EpochSampler, seed_everything
from faceprompt.errors import Interrupted


def test_schedule_warms_up_linearly_then_follows_a_cosine_to_the_floor():
    lrs = [lr_at(step, 10, 2, 1.0, 0.1) for step in range(10)]
    assert lrs[:3] == [0.5, 1.0, 1.0]  # warm-up, then the cosine starts at the peak
    assert all(a > b > 0.1 for a, b in zip(lrs[2:], lrs[3:]))
    assert lr_at(10, 10, 2, 1.0, 0.1) == pytest.approx(0.1)
    assert lr_at(5, 10, 2, 1.0, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 3 / 8)))


def test_every_group_follows_the_schedule_at_its_own_scale():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    optimizer = make_optimizer("adamw", [{"params": [a]}, {"params": [b], "lr": 0.2}], lr=0.1)
    scheduler = warmup_cosine(optimizer, 8, 2, 0.1, 0.0)
    for step in range(8):
        expected = lr_at(step, 8, 2, 0.1, 0.0)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)
        assert optimizer.param_groups[1]["lr"] == pytest.approx(2 * expected)
        optimizer.step()
        scheduler.step()


def test_decay_groups_leave_frozen_parameters_out():
    layer = torch.nn.Linear(3, 2)
    frozen = torch.nn.Parameter(torch.zeros(4, 4), requires_grad=False)
    named = list(layer.named_parameters()) + [("frozen", frozen)]
    decay, plain = decay_groups(named, 0.05, lambda name, p: p.ndim < 2)
    assert decay == {"params": [layer.weight], "weight_decay": 0.05}
    assert plain == {"params": [layer.bias], "weight_decay": 0.0}


def _draws(generator: torch.Generator) -> tuple:
    return (random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=generator)))


def _trained(steps: int):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = make_optimizer("adamw", model.parameters(), lr=0.1, weight_decay=0.01)
    scheduler = warmup_cosine(optimizer, 10, 2, 0.1, 0.01)
    for _ in range(steps):
        optimizer_step(model(torch.randn(3, 4)).square().mean(), optimizer, scheduler, LocalRuntime(
            torch.device("cpu"), False), list(model.parameters()), 1.0)
    return model, optimizer, scheduler


def test_a_checkpoint_restores_optimizer_schedule_and_every_random_state(tmp_path):
    model, optimizer, scheduler = _trained(3)
    seed_everything(7)
    generator = torch.Generator().manual_seed(3)
    path = engine_state.save_checkpoint(tmp_path / "c.safetensors", dict(model.named_parameters()), optimizer,
                                        scheduler, {"epoch": 3, "note": [1, 2]}, {"noise": generator})
    expected = _draws(generator)
    after = [p.detach().clone() for p in model.parameters()]

    seed_everything(99)
    fresh, fresh_optimizer, fresh_scheduler = _trained(0)
    other = torch.Generator().manual_seed(12345)
    saved = engine_state.load_checkpoint(path, fresh_optimizer, fresh_scheduler, "retrain", {"noise": other})
    assert saved.info == {"epoch": 3, "note": [1, 2]}
    assert all(torch.equal(saved.model[n], p) for n, p in zip(("weight", "bias"), after))
    assert _draws(other) == expected  # Python, NumPy, torch and the named generator all continue as before
    assert fresh_scheduler.last_epoch == scheduler.last_epoch
    assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    state, restored = optimizer.state_dict()["state"], fresh_optimizer.state_dict()["state"]
    assert all(torch.equal(state[i][k], restored[i][k]) for i in state for k in state[i])
    with open(path, "rb") as f:
        assert not f.read(16).startswith(b"\x80")  # not a pickle stream


def test_an_unreadable_checkpoint_names_the_file_and_what_to_do(tmp_path):
    path = tmp_path / "c.safetensors"
    with pytest.raises(engine_state.CheckpointError, match=rf"{path}: no checkpoint to resume from; retrain"):
        engine_state.stored_info(path, "retrain")
    path.write_bytes(b"{}")
    with pytest.raises(engine_state.CheckpointError, match=rf"{path}: not a readable checkpoint .*; retrain$"):
        engine_state.stored_info(path, "retrain")


def test_a_resume_may_change_only_the_free_fields():
    saved = {"lr": 0.1, "tasks": ["age"], "device": "cpu"}
    engine_state.check_same_recipe(saved, {"lr": 0.1, "tasks": ("age",), "device": "cuda"}, ("device",), "r")
    with pytest.raises(ValueError, match=r"r: a resumed run keeps its recipe; changed: lr \(0.1 -> 0.5\), "
                                         r"tasks \(\['age'\] -> \('gender',\)\)"):
        engine_state.check_same_recipe(saved, {"lr": 0.5, "tasks": ("gender",), "device": "cpu"}, ("device",), "r")


def test_ctrl_c_becomes_interrupted_with_the_resume_command():
    with pytest.raises(Interrupted, match=r"^training interrupted after epoch 2 \(its checkpoint is kept\); "
                                          r"resume with: faceprompt train --resume runs/x$"):
        with interruptible("training", "faceprompt train --resume runs/x") as done:
            done["done"] = 2
            raise KeyboardInterrupt
    with pytest.raises(Interrupted, match="before its first epoch ended; nothing was saved"):
        with interruptible("training", "unused"):
            raise KeyboardInterrupt


def test_the_epoch_sampler_depends_only_on_seed_and_epoch():
    sampler = EpochSampler(20, seed=3)
    sampler.set_epoch(2)
    first = list(sampler)
    sampler.set_epoch(3)
    assert list(sampler) != first
    again = EpochSampler(20, seed=3)
    again.set_epoch(2)
    torch.rand(5)  # the global generator plays no part
    assert list(again) == first and sorted(first) == list(range(20))


def test_sigterm_becomes_interrupted_and_the_old_handler_returns():
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted, match="after epoch 1 .*resume with: again"):
        with interruptible("pretraining", "again") as done:
            done["done"] = 1
            os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler before the next statement
            raise AssertionError("SIGTERM did not stop the loop")
    assert signal.getsignal(signal.SIGTERM) == before
