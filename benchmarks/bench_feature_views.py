"""Task-balance duplicates on cached image features: one frozen view each (``feature_views: 1``) against K views
drawn one per epoch, measured on real faces on a CPU.

    python benchmarks/bench_feature_views.py --utkface DIR/manifest.csv --ferplus DIR/manifest.csv \
        [--views 1 4] [--seeds 0 1 2] [--epochs 10] [--emotion-part 0.03] [--json OUT]

Every run is SoftCPT under ``protocol: thesis`` on faceclip-tiny (fp32): UTKFace's train split labels age and
gender, a small part of FER+'s Train folder labels emotion, so the thesis's task balance adds augmented copies of
the emotion faces until emotion labels a third of the rows (its ``BALANCE_TASK``), several copies per face as in
the thesis's own mix. The epoch is chosen on UTKFace's val split and part of FER+ Valid; every run is scored on
both test splits. faceclip-tiny never saw FER+; it was pretrained on UTKFace's train split, which here only fills
the batches around the emotion faces. The manifests come from ``faceprompt prepare utkface|ferplus --crop box
--size 80`` (see the result's README).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from faceprompt.data.dataset import ManifestDataset
from faceprompt.evaluate import evaluate
from faceprompt.io import write_json_atomic
from faceprompt.provenance import run_record
from faceprompt.training.balance import duplicates_of
from faceprompt.training.loop import TrainConfig, fit, load_frames

METHOD_OPTIONS = {"context_tokens": 15, "task_context_tokens": 15, "task_context": "per_task",
                  "generator_bias": False, "generator_init": "normal", "normalize_task_features": False,
                  "wording": "thesis"}  # configs/thesis/softpe_15.yaml


def run_config(args, views: int, seed: int, work: Path) -> TrainConfig:
    utk, fer = str(args.utkface), str(args.ferplus)
    return TrainConfig.from_dict({
        "protocol": "thesis", "method": "softcpt", "method_options": METHOD_OPTIONS, "backbone": "faceclip-tiny",
        "tasks": ["age", "gender", "emotion"], "precision": "fp32", "device": "cpu", "epochs": args.epochs,
        "seed": seed, "feature_views": views, "run_dir": str(work / "runs"), "run_id": f"views{views}-seed{seed}",
        "cache_dir": str(work / "cache"),
        "train": [{"manifest": utk, "splits": ["train"]},
                  {"manifest": fer, "splits": ["train"], "part": [0.0, args.emotion_part]}],
        "val": [{"manifest": utk, "splits": ["val"]}, {"manifest": fer, "splits": ["val"], "part": [0.0, 0.3]}],
    })


def training_rows(cfg: TrainConfig) -> dict:
    """How many rows train, how many of them label emotion, and how many copies the task balance adds."""
    train, _ = load_frames(cfg)
    rows = ManifestDataset(train, None, cfg.tasks)
    return {"train_rows": len(rows), "emotion_rows": rows.labelled_counts()["emotion"],
            "duplicates": len(duplicates_of(cfg, rows))}


def one_run(args, views: int, seed: int, work: Path) -> dict:
    started = time.perf_counter()
    result = fit(run_config(args, views, seed, work), progress=False)
    scores = evaluate(result.run_dir, manifests=[str(args.utkface), str(args.ferplus)], splits=("test",),
                      cache_dir=str(work / "cache"), progress=False).metrics
    best = result.history[result.best_epoch - 1]
    return {"views": views, "seed": seed, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "val_mean_accuracy": best["val_mean_accuracy"], "seconds": round(time.perf_counter() - started, 1),
            "test": {f"{r.dataset}/{r.task}": {"n": int(r.n), "accuracy": float(r.accuracy),
                                               "balanced_accuracy": float(r.balanced_accuracy)}
                     for r in scores.itertuples()}}


def summary(runs: list[dict]) -> dict:
    """Per number of views: mean and spread over seeds of every test score, and the paired change from the
    first setting (same seed) of the FER+ emotion accuracy."""
    out = {}
    cells = sorted(runs[0]["test"])
    by_views = {}
    for run in runs:
        by_views.setdefault(run["views"], {})[run["seed"]] = run
    base = by_views[min(by_views)]
    for views, seeds in sorted(by_views.items()):
        entry = {}
        for cell in cells:
            for metric in ("accuracy", "balanced_accuracy"):
                values = [r["test"][cell][metric] for r in seeds.values()]
                entry[f"{cell}/{metric}"] = {"mean": statistics.mean(values),
                                             "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
        changes = [seeds[s]["test"]["ferplus/emotion"]["accuracy"] - base[s]["test"]["ferplus/emotion"]["accuracy"]
                   for s in seeds if s in base]
        entry["ferplus/emotion/accuracy_change_by_seed"] = changes
        entry["seconds_mean"] = statistics.mean(r["seconds"] for r in seeds.values())
        out[str(views)] = entry
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utkface", type=Path, required=True, help="a prepared UTKFace manifest")
    parser.add_argument("--ferplus", type=Path, required=True, help="a prepared FER+ manifest")
    parser.add_argument("--views", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--emotion-part", type=float, default=0.03, help="the part of FER+ Train trained on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="runs and feature caches (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv[1:])
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        rows = training_rows(run_config(args, args.views[0], args.seeds[0], work))
        runs = []
        for seed in args.seeds:
            for views in args.views:
                runs.append(one_run(args, views, seed, work))
                print(f"views {views} seed {seed}: FER+ emotion {runs[-1]['test']['ferplus/emotion']['accuracy']:.4f}"
                      f" (best epoch {runs[-1]['best_epoch']}, {runs[-1]['seconds']} s)", flush=True)
    record = {**run_record(argv), "threads": args.threads, "epochs": args.epochs, "emotion_part": args.emotion_part,
              "method": "softcpt", "backbone": "faceclip-tiny", "method_options": METHOD_OPTIONS, **rows,
              "runs": runs, "summary": summary(runs)}
    for views, entry in record["summary"].items():
        cell = entry["ferplus/emotion/accuracy"]
        print(f"views {views}: FER+ emotion accuracy {cell['mean']:.4f} (sd {cell['sd']:.4f})")
    if args.json:
        write_json_atomic(args.json, record)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
