"""Save and load trained prompts: only the trained tensors (safetensors) plus a config.json.

No pickle is ever loaded: a prompts file is safetensors, the config is JSON.

The prompts file carries its own identity in the safetensors metadata (``IDENTITY_FIELDS``, each value
JSON-encoded): a file copied from another run is refused on load, even where the tensor shapes happen to
fit. A file written before the identity was recorded (no metadata) still loads, checked against its
config.json only, with a warning that says to retrain.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from faceprompt.backbones import Backbone, load_backbone
from faceprompt.io import atomic_path, read_json, write_json_atomic
from faceprompt.prompts import PromptModel, build_model
from faceprompt.tasks import Task, get_tasks

FORMAT_VERSION = 2  # 2: the identity is also in the prompts file's metadata
PROMPTS_FILE = "prompts.safetensors"
CONFIG_FILE = "config.json"
# What a prompts file was trained for: stored in its metadata, checked against config.json and the backbone.
IDENTITY_FIELDS: tuple[str, ...] = ("backbone", "weights", "method", "method_config", "tasks")
RETRAIN = "retrain the run (faceprompt train) to write it again"


def prompt_config(model: PromptModel) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "method": model.method,
        "method_config": model.method_config(),
        "backbone": model.backbone.name,
        "weights": model.backbone.weights_id,
        "tasks": {t.name: list(t.classes) for t in model.tasks},
    }


def identity_metadata(config: dict[str, Any]) -> dict[str, str]:
    """The safetensors metadata of a prompts file: ``format_version`` and ``IDENTITY_FIELDS``, as JSON strings."""
    fields = ("format_version", *IDENTITY_FIELDS)
    return {key: json.dumps(config.get(key), sort_keys=True) for key in fields}


def save_prompts(model: PromptModel, run_dir: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``prompts.safetensors`` (trained tensors and their identity) and ``config.json`` atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_trainable_parameters().items()}
    identity = prompt_config(model)
    with atomic_path(run_dir / PROMPTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata=identity_metadata(identity))
    config = {**identity, **(extra or {})}
    write_json_atomic(run_dir / CONFIG_FILE, config)
    return run_dir


def run_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(config.json, prompts file) of a run folder, or of a prompts file given directly (config next to it)."""
    path = Path(path)
    if path.is_dir():
        return path / CONFIG_FILE, path / PROMPTS_FILE
    if path.suffix == ".safetensors":
        return path.parent / CONFIG_FILE, path
    if path.exists():
        raise ValueError(f"{path}: expected a run folder (config.json and {PROMPTS_FILE}) or a .safetensors file")
    raise FileNotFoundError(f"{path}: no such run folder")


def read_run_config(config_path: Path) -> dict[str, Any]:
    """config.json of a run, with the fields loading needs present and of the right kind."""
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: expected a JSON object, got {type(config).__name__}; {RETRAIN}")
    kinds = {"method": str, "method_config": dict, "backbone": str, "tasks": dict}
    for key, kind in kinds.items():
        if key not in config:
            raise ValueError(f"{config_path}: missing field {key!r}; {RETRAIN}")
        if not isinstance(config[key], kind):
            raise ValueError(f"{config_path}: field {key!r} must be a JSON {'string' if kind is str else 'object'}, "
                             f"got {config[key]!r}")
    return config


def read_prompts_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str] | None]:
    """(tensors on the CPU, metadata) of a prompts file; a missing, empty or corrupt file is one clear error."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file" + ("" if not path.exists() else " (it is a folder)")
                                + f"; {RETRAIN}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}, handle.metadata()
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err}); {RETRAIN}") from None


def check_identity(metadata: dict[str, str] | None, config: dict[str, Any], prompts_path: Path,
                   config_path: Path) -> None:
    """Refuse a prompts file whose recorded identity differs from its run's config; warn if it has none."""
    if not metadata or not set(IDENTITY_FIELDS) <= set(metadata):
        warnings.warn(f"{prompts_path}: no identity metadata (written before format 2); checked against "
                      f"{config_path.name} only: {RETRAIN}", stacklevel=3)
        return
    for key in IDENTITY_FIELDS:
        try:
            recorded = json.loads(metadata[key])
        except ValueError:
            raise ValueError(f"{prompts_path}: metadata field {key!r} is not JSON; {RETRAIN}") from None
        expected = json.loads(json.dumps(config.get(key), sort_keys=True))
        if recorded != expected:
            raise ValueError(f"{prompts_path}: field {key!r} is {recorded!r} in the prompts file but {expected!r} "
                             f"in {config_path} (was the file copied from another run?)")


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """A ValueError about a value read from ``path`` names the file."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _check_tasks(saved: dict[str, list[str]], tasks: tuple[Task, ...], where: Path) -> None:
    wanted = {t.name: list(t.classes) for t in tasks}
    if saved != wanted:
        raise ValueError(f"{where}: prompts were trained for tasks {saved}, not {wanted}")


def _check_backbone(config: dict[str, Any], backbone: Backbone, where: Path, allow_other_weights: bool) -> None:
    if backbone.name != config["backbone"]:
        raise ValueError(f"{where}: prompts were trained on backbone {config['backbone']!r}, "
                         f"not {backbone.name!r}")
    if not allow_other_weights and config.get("weights") not in (None, backbone.weights_id):
        raise ValueError(f"{where}: prompts were trained on weights {config['weights']!r} of {backbone.name}, "
                         f"but the loaded weights are {backbone.weights_id!r} (pass allow_other_weights=True "
                         f"to load anyway)")


def load_prompts(run_dir: str | os.PathLike, backbone: Backbone | str | None = None, weights: str | None = None,
                 device: str | torch.device = "cpu", allow_other_weights: bool = False,
                 tasks: tuple[Task | str, ...] | list[Task | str] | None = None) -> PromptModel:
    """Rebuild a trained method from a run folder (or its prompts file); refuse a checkpoint that does not fit.

    ``tasks``: the tasks the caller needs (names or Task objects, any order); a checkpoint trained for
    another set of tasks or classes is refused. The loaded model keeps the checkpoint's task order.
    ``backbone``: a loaded tower, or a name that must be the run's (a run's backbone is fixed), or None.
    The files are read and checked before any backbone loads: a bad run fails in a second.
    """
    config_path, prompts_path = run_paths(run_dir)
    config = read_run_config(config_path)
    with _naming(config_path):
        saved_tasks = get_tasks(list(config["tasks"]))
    _check_tasks(config["tasks"], saved_tasks, config_path)
    if tasks is not None:
        wanted = [get_tasks([t])[0] if isinstance(t, str) else t for t in tasks]
        if len(wanted) != len({t.name for t in wanted}):
            raise ValueError(f"tasks {[t.name for t in wanted]}: each task may appear once")
        _check_tasks(config["tasks"], tuple(wanted), config_path)
    tensors, metadata = read_prompts_file(prompts_path)
    check_identity(metadata, config, prompts_path, config_path)
    if isinstance(backbone, str) and backbone != config["backbone"]:
        raise ValueError(f"{config_path.parent}: prompts were trained on backbone {config['backbone']!r}, not "
                         f"{backbone!r}; a run's backbone is fixed (leave the backbone out to use the run's)")
    if not isinstance(backbone, Backbone):
        # A run trained on other weights (a file, local-dir:...) names them: load those unless told otherwise.
        trained_on = (config.get("train_config") or {}).get("weights") if weights is None else None
        backbone = load_backbone(config["backbone"], weights=weights or trained_on, device=device)
    _check_backbone(config, backbone, config_path.parent, allow_other_weights)
    with _naming(config_path):
        model = build_model(config["method"], backbone, saved_tasks, config["method_config"])
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
