"""The tuned run that ships beside the embedded model: a trained run folder copied into the package with its
paths made relative to the project, its test metrics, and a recipe saying how it was chosen and made."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from faceprompt.checkpoint import CONFIG_FILE, PROMPTS_FILE
from faceprompt.io import atomic_path, read_json, relative_to, write_json_atomic

SHIPPED_FILES = (CONFIG_FILE, PROMPTS_FILE, "metrics.json")
PATH_FIELDS = ("run_dir", "cache_dir", "init_from")


def portable_config(config: dict, root: Path) -> dict:
    """A run's ``config.json`` with every path in its train config relative to ``root``."""
    train = dict(config.get("train_config") or {})
    for field in PATH_FIELDS:
        if field in train:
            train[field] = relative_to(train[field], root)
    for key in ("train", "val"):
        if isinstance(train.get(key), list):
            train[key] = [{**source, "manifest": relative_to(source["manifest"], root)} for source in train[key]]
    return {**config, "train_config": train}


def ship_run(run_dir: str | os.PathLike, dest: str | os.PathLike, command: str, selection: list[dict],
             root: str | os.PathLike = ".") -> Path:
    """Copy ``run_dir``'s config (paths made relative to ``root``), prompts and per-epoch metrics into
    ``dest``, with its test metrics (``eval/metrics.json``, required) and ``recipe.json``: the command that
    trains it and the validation scores that chose its method (``selection``: rows of method, val_metric,
    seeds). Files are written atomically; ``dest`` is replaced as a whole."""
    run_dir, dest, root = Path(run_dir), Path(dest), Path(root)
    missing = [name for name in (*SHIPPED_FILES, "eval/metrics.json") if not (run_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir}: {missing} missing (train the run, then `faceprompt evaluate` it)")
    staging = dest.with_name(dest.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write_json_atomic(staging / CONFIG_FILE, portable_config(read_json(run_dir / CONFIG_FILE), root))
    for name in SHIPPED_FILES[1:]:
        with atomic_path(staging / name) as tmp:
            shutil.copyfile(run_dir / name, tmp)
    write_json_atomic(staging / "test_metrics.json", read_json(run_dir / "eval" / "metrics.json"))
    write_json_atomic(staging / "recipe.json", {"command": command, "selected_by_validation": selection})
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    return dest
