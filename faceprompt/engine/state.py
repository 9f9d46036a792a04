"""Checkpoints: one atomic safetensors file for every tensor, JSON in its header for everything else.

Nothing is ever unpickled: model and optimizer tensors, torch's CPU and CUDA generator states and those of
named ``torch.Generator`` objects are tensors; the optimizer's and scheduler's numbers, Python's and
NumPy's generator states, counters and the run's config are JSON. A truncated or corrupt file is one
:class:`CheckpointError` naming it and saying what to do.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from faceprompt.io import atomic_path

CHECKPOINT_FILE = "checkpoint.safetensors"
_HEADER_KEY = "faceprompt.checkpoint"
_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the run resuming it."""


@dataclass
class Checkpoint:
    """What a trainer gets back: its model tensors and the JSON it stored (counters, history, config)."""

    model: dict[str, torch.Tensor]
    info: dict[str, Any]


# --- random state ----------------------------------------------------------------------------------

def capture_rng(generators: dict[str, torch.Generator] | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, json) holding the state of every global generator and of the named ``generators``."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    for name, generator in (generators or {}).items():
        tensors[f"rng.generator.{name}"] = generator.get_state()
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    plain = {"python": [version, list(words), gauss],
             "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    return tensors, plain


def restore_rng(tensors: dict[str, torch.Tensor], plain: dict,
                generators: dict[str, torch.Generator] | None = None) -> None:
    """Put back what :func:`capture_rng` captured (GPU states only where GPUs are present)."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
    for name, generator in (generators or {}).items():
        generator.set_state(tensors[f"rng.generator.{name}"])
    version, words, gauss = plain["python"]
    random.setstate((version, tuple(words), gauss))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


# --- optimizer state -------------------------------------------------------------------------------

def _split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain = {}, {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, {"plain": plain, "param_groups": state["param_groups"]}


def _join_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state: dict[int, dict] = {int(i): dict(v) for i, v in plain["plain"].items()}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


# --- the file --------------------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, model: dict[str, torch.Tensor], optimizer, scheduler,
                    info: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> Path:
    """Write everything a resume needs to ``path`` in one atomic file (the old one stays until it is replaced)."""
    optimizer_tensors, optimizer_plain = _split_optimizer(optimizer.state_dict())
    rng_tensors, rng_plain = capture_rng(generators)
    tensors = {**{f"model.{k}": v for k, v in model.items()}, **optimizer_tensors, **rng_tensors}
    # Copies: safetensors refuses tensors that share memory, and the file must not alias live training state.
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()}
    header = {"format": _FORMAT, "info": info, "optimizer": optimizer_plain,
              "scheduler": scheduler.state_dict() if scheduler is not None else None, "rng": rng_plain}
    return write_tensor_file(path, tensors, header, _HEADER_KEY)


def write_tensor_file(path: str | os.PathLike, tensors: dict[str, torch.Tensor], header: Any,
                      header_key: str) -> Path:
    """Atomically write ``tensors`` as safetensors with ``header`` as JSON under ``header_key`` in its metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", header_key: json.dumps(header)})
    return path


def read_tensor_file(path: str | os.PathLike, header_key: str, what: str, advice: str,
                     error: type[ValueError] = ValueError) -> tuple[dict[str, torch.Tensor], Any]:
    """(tensors, header) of a file :func:`write_tensor_file` wrote; a truncated or corrupt file raises one
    ``error`` naming it as ``what`` and ending with ``advice``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = json.loads((f.metadata() or {})[header_key])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors, JSON and key errors all mean an unusable file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise error(f"{path}: not a readable {what} (truncated or corrupt: {reason}); {advice}") from None
    return tensors, header


def read_checkpoint(path: str | os.PathLike, advice: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, header) of a checkpoint file; an unreadable one is a CheckpointError ending with ``advice``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from; {advice}")
    tensors, header = read_tensor_file(path, _HEADER_KEY, "checkpoint", advice, CheckpointError)
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of format {_FORMAT}; {advice}")
    return tensors, header


def load_checkpoint(path: str | os.PathLike, optimizer, scheduler, advice: str,
                    generators: dict[str, torch.Generator] | None = None) -> Checkpoint:
    """Restore the optimizer, the scheduler and every random state from ``path``; return the rest."""
    tensors, header = read_checkpoint(path, advice)
    try:
        optimizer.load_state_dict(_join_optimizer(tensors, header["optimizer"]))
        if scheduler is not None:
            scheduler.load_state_dict(header["scheduler"])
        restore_rng(tensors, header["rng"], generators)
    except (KeyError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: does not fit this run ({err}); {advice}") from None
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    return Checkpoint(model, header["info"])


def stored_info(path: str | os.PathLike, advice: str) -> dict[str, Any]:
    """The JSON a checkpoint stored, without touching any state (to check a resume before any work)."""
    return read_checkpoint(path, advice)[1]["info"]


# --- a resumed run keeps its recipe ----------------------------------------------------------------

def check_same_recipe(saved: dict[str, Any], current: dict[str, Any], free: tuple[str, ...], where: str) -> None:
    """Refuse a resume whose config differs from the saved one in any field but the ``free`` ones, naming them."""
    changed = sorted(k for k in set(saved) | set(current)
                     if k not in free and _plain(saved.get(k)) != _plain(current.get(k)))
    if changed:
        detail = ", ".join(f"{k} ({saved.get(k)!r} -> {current.get(k)!r})" for k in changed)
        raise ValueError(f"{where}: a resumed run keeps its recipe; changed: {detail}. Only {list(free)} may "
                         f"change on resume; start a new run for another recipe")


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal (JSON has no tuples)."""
    return json.loads(json.dumps(value, default=str))
