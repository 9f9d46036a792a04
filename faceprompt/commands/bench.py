"""`faceprompt bench`: latency, throughput and memory of prompt methods against zero-shot (``--train``:
training steps against the bare tower; ``--epoch-cache``: one epoch with and without cached image features).

    faceprompt bench --backbone pe-core-b16 --weights random --methods coop softcpt vpt --batch-sizes 1 64
"""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from pathlib import Path

import torch

from faceprompt.backbones import Backbone
from faceprompt.bench.epoch_cache import bench_epoch_cache
from faceprompt.bench.inference import bench_methods, format_table
from faceprompt.bench.timing import DTYPES, parse_method_spec
from faceprompt.commands.options import non_negative_int, positive_float, positive_int
from faceprompt.bench.training import TOWER, bench_training, format_training_table
from faceprompt.engine.runtime import resolve_device
from faceprompt.io import write_json_atomic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", required=True, help="backbone name (e.g. pe-core-b16)")
    parser.add_argument("--weights", default="random", help="random (default), hub, a file or local-dir:...")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="methods besides zero-shot (default coop softcpt vpt; --epoch-cache: softcpt); "
                             "options as NAME:key=value,... (vpt-ts:batched=false)")
    parser.add_argument("--batch-sizes", nargs="+", type=positive_int, default=[1, 64])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--warmup", type=non_negative_int, default=1)
    parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    parser.add_argument("--epoch-cache", action="store_true",
                        help="time one training epoch with and without cached image features instead")
    parser.add_argument("--images", type=positive_int, default=512, help="--epoch-cache: images in the epoch")
    parser.add_argument("--batch-size", type=positive_int, nargs="+", default=[32],
                        help="--epoch-cache: training batch sizes (one cache build serves them all)")
    parser.add_argument("--stand-in-tokenizer", action="store_true",
                        help="random weights only: word-hash token ids, for a tower whose tokenizer is not cached "
                             "(SigLIP2's comes from the HF hub)")
    parser.add_argument("--compile", nargs="?", const="default", default="off", choices=Backbone.COMPILE_MODES,
                        help="the image path through torch.compile, in this mode (no value: default; "
                             "reduce-overhead: CUDA graphs, for batch 1 on a GPU); the warm-up calls compile")
    parser.add_argument("--peak-tflops", type=positive_float, default=None,
                        help="the device's peak TFLOP/s for the share column (default: known GPUs' data sheets)")
    parser.add_argument("--train", action="store_true",
                        help="time training steps instead (forward, backward, optimizer) at --batch-size, "
                             "against the bare tower's forward-backward")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the options (backbone, methods, JSON target) and say what would run; load nothing")


def _check_json_target(path: str | None) -> None:
    """``--json`` must name a file that can be written, known before minutes of timing."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"--json {path}: is a folder; give a file name (e.g. {target / 'bench.json'})")
    folder = target.parent if str(target.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--json {path}: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise ValueError(f"--json {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ValueError(f"--json {path}: not writable here; choose a file in a folder you can write")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    _check_json_target(args.json)
    for spec in args.methods or []:
        parse_method_spec(spec)
    if args.dry_run:
        from faceprompt.backbones import get_spec

        get_spec(args.backbone)
        mode = "training steps" if args.train else "one epoch with and without cache" if args.epoch_cache else \
            "inference"
        print(f"would time {mode} of {args.backbone} on {args.device} ({args.dtype}, compile {args.compile}): "
              f"{' '.join(args.methods or ['(default methods)'])}")
        return 0
    resolve_device(args.device, "--device")
    compile = args.compile
    if args.train:
        records = _run_training(args, compile)
    elif args.epoch_cache:
        method = args.methods[0] if args.methods else "softcpt"
        results = bench_epoch_cache(args.backbone, method, args.images, args.batch_size, args.device, args.weights,
                                    stand_in_tokenizer=args.stand_in_tokenizer)
        import pandas as pd

        records = [asdict(r) for r in results]
        print(f"{method} on {results[0].backbone} ({results[0].device}), one epoch over {args.images} images")
        print(pd.DataFrame(records).drop(columns=["method", "backbone", "device", "images"]).to_string(
            index=False, float_format=lambda v: f"{v:.2f}"))
    else:
        rows = bench_methods(args.backbone, args.methods or ["coop", "softcpt", "vpt"], args.batch_sizes,
                             args.device, args.weights, args.dtype, args.repeats, args.warmup,
                             stand_in_tokenizer=args.stand_in_tokenizer, compile=compile, peak=args.peak_tflops)
        tokens = ", stand-in tokens" if args.stand_in_tokenizer else ""
        compiled = f", compiled ({compile})" if compile != "off" else ""
        print(f"{rows[0].backbone} on {rows[0].device}, {rows[0].dtype}{tokens}{compiled}, "
              f"median of {rows[0].repeats} repeats")
        print(format_table(rows))
        records = [asdict(r) for r in rows]
    if args.json:
        write_json_atomic(Path(args.json), records)
        print(f"wrote {args.json}")
    return 0


def _run_training(args: argparse.Namespace, compile: str) -> list[dict]:
    """``faceprompt bench --train``: print the table, return the rows as records."""
    rows = bench_training(args.backbone, args.methods or ["vpt"], args.batch_size, args.device, args.weights,
                          args.dtype, args.repeats, args.warmup, stand_in_tokenizer=args.stand_in_tokenizer,
                          compile=compile, peak=args.peak_tflops)
    compiled = ", compiled" if compile != "off" else ""
    print(f"training steps on {rows[0].backbone} ({rows[0].device}, {rows[0].dtype}{compiled}), "
          f"median of {rows[0].repeats} repeats; '{TOWER}': the bare tower's forward-backward")
    print(format_training_table(rows))
    return [asdict(r) for r in rows]
