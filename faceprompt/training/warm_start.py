"""``init_from``: start a run's text prompt from an earlier run's trained tensors (the thesis's two stages:
SoftCPT or CoOp first, then text and visual prompts together)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from faceprompt.checkpoint import read_prompts_file, read_run_config, run_paths
from faceprompt.prompts.base import PromptModel

PART = "text"


def _refuse(run_dir: Path, what: str, earlier, now) -> ValueError:
    return ValueError(f"init_from: {run_dir} was trained with {what} {earlier!r}, this run has {now!r}; "
                      f"its text prompt can only start a run of the same backbone and text method and options")


def load_text_part(model: PromptModel, run_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Copy the text prompt's tensors of ``run_dir`` (a trained run folder) into ``model``; returns them.

    The earlier run must match on backbone, tasks and text method with every option; anything else is
    refused by one ValueError naming ``init_from``. The visual part keeps its own initialisation.
    """
    run_dir = Path(run_dir)
    config_path, prompts_path = run_paths(run_dir)
    if not prompts_path.is_file():
        raise FileNotFoundError(f"init_from: {run_dir} has no {prompts_path.name} (not a finished run)")
    config = read_run_config(config_path)
    text_now = model.method_config()[PART]
    tasks_now = {t.name: list(t.classes) for t in model.tasks}
    checks = (("backbone", config.get("backbone"), model.backbone.name),
              ("tasks", config.get("tasks"), tasks_now),
              ("text prompt", config.get("method_config", {}).get(PART), text_now))
    for what, earlier, now in checks:
        if earlier != now:
            raise _refuse(run_dir, what, earlier, now)
    tensors, _ = read_prompts_file(prompts_path)
    prefix = f"{PART}."
    earlier = {name: t for name, t in tensors.items() if name.startswith(prefix)}
    wanted = {name: p for name, p in model.named_trainable_parameters().items() if name.startswith(prefix)}
    if set(earlier) != set(wanted) or any(earlier[n].shape != p.shape for n, p in wanted.items()):
        raise _refuse(run_dir, "text tensors", sorted(earlier), sorted(wanted))
    with torch.no_grad():
        for name, param in wanted.items():
            param.copy_(earlier[name])
    return earlier
