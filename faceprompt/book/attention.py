"""The models the attention chapter looks inside: trained runs when they fit the backbone, else short ones."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from faceprompt.book._machinery.glue import glue, key, percent
from faceprompt.book.methods import run_name, trains
from faceprompt.book.runs import train_and_evaluate, train_config

ATTENTION_BATCH = 32  # the short runs' batch size (a profile's train_config may change it)


def trained_on(run: Path, tower) -> bool:
    """Whether ``run`` holds prompts trained on this very backbone and weights."""
    if not (run / "prompts.safetensors").is_file():
        return False
    config = json.loads((run / "config.json").read_text())
    return config.get("backbone") == tower.name and config.get("weights") in (None, tower.weights_id)


def attention_models(backbone: str, runs_dir: str | os.PathLike, methods: list[str], manifests: dict[str, str],
                     work_dir: str | os.PathLike, weights: str | None = None, device: str = "cpu",
                     fields: dict | None = None, splits: dict | None = None) -> dict:
    """Models to look inside: each method's trained run on ``backbone`` from ``runs_dir`` when there is
    one, else a short training run into ``work_dir/attention/<backbone>`` (zero-shot needs none) with
    TrainConfig ``fields`` (one epoch unless they say otherwise). ``splits``: the ``train_splits``,
    ``val_splits``, ``train_part`` and ``val_part`` of :func:`~faceprompt.book.runs.train_config` for that run."""
    from faceprompt.backbones import load_backbone
    from faceprompt.checkpoint import load_prompts
    from faceprompt.prompts import build_model

    tower = load_backbone(backbone, weights, device=device)
    models = {}
    for method in methods:
        if not trains(method):
            models[method] = build_model(method, tower).eval()
            continue
        run = Path(runs_dir) / run_name(method)
        if not trained_on(run, tower):
            run = Path(work_dir) / "attention" / backbone / run_name(method)
            if not trained_on(run, tower):  # absent, or left from other weights (an updated model)
                config = train_config(method, backbone, manifests, run.parent,
                                      {"epochs": 1, "batch_size": ATTENTION_BATCH, **dict(fields or {})},
                                      weights=weights, device=device, **dict(splits or {}))
                train_and_evaluate(config)
        models[method] = load_prompts(run, backbone=tower)
    return models


def glue_prompt_shares(summary: pd.DataFrame) -> None:
    """Glue the pooling head's weight on the visual prompt tokens as ``prompt-share-<family>-<method>-<task>``."""
    for _, row in summary.iterrows():
        glue(key("prompt-share", row["family"], row["method"], row["task"]), percent(row["prompt_share"]))
