"""Save and load trained prompts: only the trained tensors (safetensors) plus a config.json.

No pickle is ever loaded: a prompts file is safetensors, the config is JSON.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from faceprompt.backbones import Backbone, load_backbone
from faceprompt.io import atomic_path, read_json, write_json_atomic
from faceprompt.prompts import PromptModel, build_model
from faceprompt.tasks import Task, get_tasks

FORMAT_VERSION = 1
PROMPTS_FILE = "prompts.safetensors"
CONFIG_FILE = "config.json"


def prompt_config(model: PromptModel) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "method": model.method,
        "method_config": model.method_config(),
        "backbone": model.backbone.name,
        "weights": model.backbone.weights_id,
        "tasks": {t.name: list(t.classes) for t in model.tasks},
    }


def save_prompts(model: PromptModel, run_dir: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``prompts.safetensors`` (trained tensors only) and ``config.json`` atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_trainable_parameters().items()}
    with atomic_path(run_dir / PROMPTS_FILE) as tmp:
        save_file(tensors, str(tmp))
    config = prompt_config(model)
    if extra:
        config.update(extra)
    write_json_atomic(run_dir / CONFIG_FILE, config)
    return run_dir


def _check_tasks(saved: dict[str, list[str]], tasks: tuple[Task, ...], where: Path) -> None:
    wanted = {t.name: list(t.classes) for t in tasks}
    if saved != wanted:
        raise ValueError(f"{where}: prompts were trained for tasks {saved}, not {wanted}")


def load_prompts(run_dir: str | os.PathLike, backbone: Backbone | None = None, weights: str | None = None,
                 device: str | torch.device = "cpu", allow_other_weights: bool = False,
                 tasks: tuple[Task | str, ...] | list[Task | str] | None = None) -> PromptModel:
    """Rebuild a trained method from a run folder; refuse a checkpoint that does not fit.

    ``tasks``: the tasks the caller needs (names or Task objects, any order); a checkpoint trained for
    another set of tasks or classes is refused. The loaded model keeps the checkpoint's task order.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    config = read_json(config_path)
    for key in ("method", "method_config", "backbone", "tasks"):
        if key not in config:
            raise ValueError(f"{config_path}: missing field {key!r}")
    if backbone is None:
        backbone = load_backbone(config["backbone"], weights=weights, device=device)
    if backbone.name != config["backbone"]:
        raise ValueError(f"{run_dir}: prompts were trained on backbone {config['backbone']!r}, "
                         f"not {backbone.name!r}")
    if not allow_other_weights and config.get("weights") not in (None, backbone.weights_id):
        raise ValueError(f"{run_dir}: prompts were trained on weights {config['weights']!r} of {backbone.name}, "
                         f"but the loaded weights are {backbone.weights_id!r} (pass allow_other_weights=True "
                         f"to load anyway)")
    saved_tasks = get_tasks(list(config["tasks"]))
    _check_tasks(config["tasks"], saved_tasks, config_path)
    if tasks is not None:
        wanted = [get_tasks([t])[0] if isinstance(t, str) else t for t in tasks]
        if len(wanted) != len({t.name for t in wanted}):
            raise ValueError(f"tasks {[t.name for t in wanted]}: each task may appear once")
        _check_tasks(config["tasks"], tuple(wanted), config_path)
    model = build_model(config["method"], backbone, saved_tasks, config["method_config"])
    prompts_path = run_dir / PROMPTS_FILE
    if not prompts_path.is_file():
        raise FileNotFoundError(f"{prompts_path}: no such file")
    tensors = load_file(str(prompts_path), device=str(backbone.device))
    expected = model.named_trainable_parameters()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{prompts_path}: tensors do not match method {config['method']!r}: "
                         f"missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for name, param in expected.items():
            if tuple(tensors[name].shape) != tuple(param.shape):
                raise ValueError(f"{prompts_path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                                 f"the model expects {tuple(param.shape)}")
            param.copy_(tensors[name])
    model.eval()
    return model
