"""Which runs the attention chapter reuses, and its glue (faceprompt.book.attention)."""
from __future__ import annotations

import json

import pandas as pd

from faceprompt.book import attention
from faceprompt.book._machinery import glue as G


def test_attention_runs_from_other_weights_are_not_reused(tmp_path, tiny_backbones):
    tower = tiny_backbones["tiny-pe"]
    run = tmp_path / "vpt"
    assert not attention.trained_on(run, tower)  # nothing there yet
    run.mkdir()
    (run / "prompts.safetensors").write_bytes(b"")
    for weights, reusable in ((tower.weights_id, True), (None, True), ("local-dir:older-model:0000", False)):
        (run / "config.json").write_text(json.dumps({"backbone": "tiny-pe", "weights": weights}))
        assert attention.trained_on(run, tower) is reusable
    (run / "config.json").write_text(json.dumps({"backbone": "tiny-vit", "weights": None}))
    assert not attention.trained_on(run, tower)


def test_zero_shot_needs_no_run(tmp_path, tiny_backbones):
    models = attention.attention_models("tiny-pe", tmp_path / "runs", ["zero-shot"], {}, tmp_path)
    assert list(models) == ["zero-shot"] and models["zero-shot"].method == "zero-shot"
    assert not (tmp_path / "attention").exists()


def test_prompt_shares_are_glued_per_family_method_and_task():
    attention.glue_prompt_shares(pd.DataFrame([{"family": "pe-core", "method": "vpt-ts", "task": "age",
                                                "prompt_share": 0.125}]))
    assert G.GLUED["prompt-share-pe-core-vpt-ts-age"] == "12.5%"
