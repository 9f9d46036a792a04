"""`faceprompt pretrain --config FILE`: pretrain the small face model; `--resume` continues an interrupted run."""
from __future__ import annotations

import argparse
import logging

from faceprompt.config import add_set_argument, merge_overrides, parse_overrides, read_yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML or JSON file of PretrainConfig fields")
    parser.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh even where out holds a model or work_dir a checkpoint (they are replaced)")
    parser.add_argument("--out", help="override the config's output folder")
    parser.add_argument("--device", help="override the config's device (cpu, cuda)")
    add_set_argument(parser, "pretrain config fields (on --resume only device, threads and out)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from faceprompt.pretraining.loop import pretrain
    from faceprompt.pretraining.config import PretrainConfig
    from faceprompt.pretraining.scoring import format_report

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    overrides = parse_overrides(args.set)
    overrides.update({key: value for key, value in (("out", args.out), ("device", args.device)) if value})
    data = read_yaml(args.config) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {args.config}: expected a mapping of fields, got {type(data).__name__}")
    PretrainConfig.from_dict(data, where=f"config {args.config}").validate(f"config {args.config}")
    cfg = PretrainConfig.from_dict(merge_overrides(data, overrides), where="--set")
    cfg.validate("--set/--out/--device")
    hint = " ".join(["faceprompt pretrain --config", args.config, "--resume",
                     *(["--set", *args.set] if args.set else []), *(["--out", args.out] if args.out else []),
                     *(["--device", args.device] if args.device else [])])
    if args.resume and args.overwrite:
        raise ValueError("--overwrite: starts afresh, --resume continues: give one of them")
    result = pretrain(cfg, resume=args.resume, progress=not args.quiet, resume_hint=hint, overwrite=args.overwrite,
                      command=f"faceprompt pretrain --config {args.config}")
    print(f"faceclip: {result.parameters / 1e6:.2f}M parameters, {result.size_bytes / 1e6:.1f} MB, "
          f"trained in {result.seconds / 60:.1f} min on {result.device} -> {result.out}")
    print("held-out test zero-shot:\n" + format_report(result.test))
    return 0
