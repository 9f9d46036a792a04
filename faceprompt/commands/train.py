"""`faceprompt train --config FILE`: train a prompt method; `--resume` continues an interrupted run."""
from __future__ import annotations

import argparse

import yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML or JSON train config (see configs/train_*.yaml)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                        help="continue from the last checkpoint: of RUN_DIR, or of the config's run_dir/run_id")
    parser.add_argument("--run-id", help="name of the run folder under run_dir (overrides the config)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config fields, values in YAML (e.g. epochs=1 lr=1e-3 tasks=[gender])")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    from faceprompt.train import TrainConfig, fit, load_config, resume_config

    overrides = _overrides(args.set)
    if args.run_id:
        overrides["run_id"] = args.run_id
    if isinstance(args.resume, str):
        cfg = resume_config(args.resume)
    elif args.config:
        cfg = load_config(args.config)
    else:
        raise ValueError("--config: a config file is required (or --resume RUN_DIR)")
    if overrides:
        cfg = TrainConfig.from_dict({**cfg.to_dict(), **overrides})
    result = fit(cfg, resume=bool(args.resume), progress=not args.quiet)
    last = result.history[-1] if result.history else {}
    print(f"run {result.run_dir}: {result.stopped} after epoch {last.get('epoch', 0)}; "
          f"best epoch {result.best_epoch} (val mean {cfg.monitor}: {result.best_metric:.4f})")
    return 0
