"""`faceprompt evaluate RUN_DIR` (or `--zero-shot --backbone NAME`): metrics tables in the run folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from faceprompt.commands.options import add_compile_arguments, device, positive_int
from faceprompt.tasks import AGE_BINNINGS, CLASS_SENTENCES
from faceprompt.training.config import RESUME_CACHE as FEATURE_CACHE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", help="a run folder written by `faceprompt train` (default with "
                                                   "--manifest: the tuned run shipped with the embedded model)")
    parser.add_argument("--manifest", nargs="+", default=None, metavar="PATH",
                        help="manifests to evaluate on (default: the run's training manifests)")
    parser.add_argument("--split", nargs="+", default=["test"], help="manifest splits to use (default test)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help="only these datasets (values of the manifest's dataset column)")
    parser.add_argument("--out", help="where to write eval/ (default: the run folder)")
    parser.add_argument("--zero-shot", action="store_true",
                        help="evaluate the bare backbone (--backbone, default the embedded model) with its "
                             "hand-written prompts instead of a run")
    parser.add_argument("--backbone", help="zero-shot: backbone name (with a run: must be the run's, which is fixed)")
    parser.add_argument("--weights", help="backbone weights: random, a file, local-dir:... (default: the usual)")
    parser.add_argument("--tasks", nargs="+", default=None,
                        help="zero-shot: tasks (default all); with a run: must be the run's tasks")
    parser.add_argument("--sentences", choices=sorted(CLASS_SENTENCES), default=None,
                        help="zero-shot: one hand-written sentence per class from this set instead of the "
                             "templates ('thesis': the thesis's baseline sentences)")
    parser.add_argument("--concordance", action="store_true",
                        help="also the thesis's concordance index: the share of images on which the run predicts "
                             "what the zero-shot baseline with the thesis's sentences predicts")
    parser.add_argument("--age-binning", choices=AGE_BINNINGS, default=None,
                        help="how a given age becomes its true bin: floor (19.6 is 10-19) or round (20-29, the "
                             "thesis's); default: as the run trained, floor for zero-shot")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--cache-dir", default=None,
                        help="image feature cache for frozen image paths (default: feature-cache/ in the folder "
                             "written to; '' disables)")
    add_compile_arguments(parser)
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from faceprompt.evaluate import evaluate, evaluate_zero_shot
    from faceprompt.predict import default_backbone, default_run

    written_to = Path(args.out or args.run_dir or ".")  # the cache stays in the folder the user named
    written_to = written_to.parent if written_to.suffix == ".safetensors" else written_to
    cache_dir = args.cache_dir if args.cache_dir is not None else (
        str(written_to / FEATURE_CACHE) if (args.out or args.run_dir) else "")
    common = dict(splits=tuple(args.split), datasets=args.datasets, batch_size=args.batch_size,
                  cache_dir=cache_dir or None, progress=not args.quiet, compile=args.compile,
                  age_binning=args.age_binning)
    if args.zero_shot:
        backbone = args.backbone or default_backbone()
        if not args.out:
            raise ValueError(f"--out: required with --zero-shot (e.g. runs/zero-shot-{backbone})")
        result = evaluate_zero_shot(backbone, args.manifest or [], args.out, weights=args.weights,
                                    tasks=tuple(args.tasks) if args.tasks else None, device=args.device,
                                    method_config={"sentences": args.sentences} if args.sentences else None,
                                    **common)
    else:
        run_dir = args.run_dir or (default_run(args.backbone, args.weights) if args.manifest else None)
        if not run_dir:
            raise ValueError("run_dir: give a run folder, or --manifest M (the shipped tuned run), or "
                             "--zero-shot --backbone NAME")
        if not args.run_dir and not args.out:
            raise ValueError(f"--out: required without a run folder (the shipped run {run_dir} is not written to)")
        if args.sentences:
            raise ValueError("--sentences: chooses the zero-shot prompts; a run has its own (add --zero-shot)")
        result = evaluate(run_dir, manifests=args.manifest, out_dir=args.out, device=args.device,
                          weights=args.weights, backbone=args.backbone, tasks=args.tasks,
                          concordance=args.concordance, **common)
    columns = [c for c in ("dataset", "task", "n", "accuracy", "balanced_accuracy", "macro_f1", "ece",
                           "one_off_accuracy", "mean_abs_bin_error", "fairness_gap", "concordance")
               if c in result.metrics]
    print(f"{result.summary['method']} on {result.summary['backbone']} "
          f"(added parameters {result.summary['added_parameters']:,})")
    print(result.metrics[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"tables in {result.out_dir}")
    return 0
