"""`faceprompt train --config FILE`: train a prompt method; `--resume` continues an interrupted run."""
from __future__ import annotations

import argparse

from faceprompt.config import add_set_argument, merge_overrides, parse_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML or JSON train config (see configs/train_*.yaml)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                        help="continue from the last checkpoint: of RUN_DIR (written there, wherever it was "
                             "trained), or of the config's run_dir/run_id")
    parser.add_argument("--run-id", help="name of the run folder under run_dir (overrides the config)")
    add_set_argument(parser, "train config fields (on --resume only device, precision, num_workers, "
                             "accelerate, compile, cache_dir and epochs)")
    parser.add_argument("--compile", action="store_true",
                        help="the image path through torch.compile (the config field compile: true)")
    parser.add_argument("--stand-in", metavar="MANIFEST",
                        help="run the config's recipe on the tiny random tower of its backbone family and on "
                             "MANIFEST for one epoch (a check that a real-backbone config runs, in seconds)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from faceprompt.training.loop import TrainConfig, fit, load_config, resume_config
    from faceprompt.training.config import stand_in

    overrides = parse_overrides(args.set)
    if args.run_id is not None:
        overrides["run_id"] = args.run_id  # '' too: refused by name, never a silent fallback
    if args.compile:
        overrides["compile"] = True
    if isinstance(args.resume, str):
        if args.config:
            raise ValueError(f"--config: a resumed run keeps the recipe stored in {args.resume}/config.json; "
                             f"leave out --config (or resume with --config alone and no folder)")
        cfg = resume_config(args.resume)
    elif args.config:
        cfg = load_config(args.config)
    else:
        raise ValueError("--config: a config file is required (or --resume RUN_DIR)")
    if overrides:
        cfg = TrainConfig.from_dict(merge_overrides(cfg.to_dict(), overrides), where="--set")
    if args.stand_in:
        if args.resume:
            raise ValueError("--stand-in: a stand-in run starts afresh; leave out --resume")
        cfg = stand_in(cfg, args.stand_in)
    result = fit(cfg, resume=bool(args.resume), progress=not args.quiet)
    last = result.history[-1] if result.history else {}
    if result.selected_by == "train_loss":
        chosen = (f"lowest training loss {-result.best_metric:.4f}; no validation rows, so the epoch is chosen "
                  f"on the training loss")
    else:
        chosen = f"val mean {cfg.monitor}: {result.best_metric:.4f}"
    print(f"run {result.run_dir}: {result.stopped} after epoch {last.get('epoch', 0)}; "
          f"best epoch {result.best_epoch} ({chosen})")
    return 0
