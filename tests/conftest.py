"""Shared fixtures: the tiny test towers (loaded once per session), a seeded RNG per test, shared data.

Everything here runs offline: HF_HUB_OFFLINE is set before anything imports huggingface_hub, so a
missing weight file fails at once instead of after minutes of retries.
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_BACKBONES = ("tiny-vit", "tiny-pe")

torch.manual_seed(0)
# The tiny towers gain nothing from intra-op threads, and on a shared CPU idle OpenMP workers spin:
# one thread runs these tests many times faster. FACEPROMPT_TEST_THREADS overrides it.
torch.set_num_threads(int(os.environ.get("FACEPROMPT_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed_torch():
    """Every test starts from the same RNG state, whatever ran before it."""
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_backbones():
    """{name: Backbone} for the SigLIP2-shaped and the PE-Core-shaped test towers (random, frozen)."""
    from faceprompt.backbones import load_backbone

    return {name: load_backbone(name) for name in TINY_BACKBONES}


@pytest.fixture(params=TINY_BACKBONES)
def backbone(request, tiny_backbones):
    """Each tiny tower in turn; shared across the session, so tests must not modify it."""
    return tiny_backbones[request.param]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder shared between checkouts (../shared/data or $FACEPROMPT_SHARED_DATA)."""
    root = Path(os.environ.get("FACEPROMPT_SHARED_DATA", REPO_ROOT / ".." / "shared" / "data")).resolve()
    if not root.is_dir():
        pytest.skip(f"shared data folder {root} is absent (set FACEPROMPT_SHARED_DATA to point at it)")
    return root



@pytest.fixture(scope="session")
def faceclip():
    """The embedded face model, loaded once."""
    from faceprompt.backbones import load_backbone

    return load_backbone("faceclip-tiny")


@pytest.fixture
def shipped(tmp_path, monkeypatch, faceclip):
    """A VPT run on the embedded model, put where the package's shipped tuned run lives."""
    from faceprompt import predict
    from faceprompt.checkpoint import save_prompts
    from faceprompt.prompts import build_model

    model = build_model("vpt", faceclip, config={"tokens": 2})
    with torch.no_grad():
        model.visual.prompts.mul_(5.0)  # far from anything zero-shot would say
    run = (tmp_path / "faceclip-tiny-tuned").resolve()
    save_prompts(model, run)
    monkeypatch.setattr(predict, "SHIPPED_RUN", run)
    return run
