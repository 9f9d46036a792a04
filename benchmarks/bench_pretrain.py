"""Wall-clock time of faceclip-tiny's pretraining recipe on a CPU or a GPU, where the datasets are not.

    HF_HUB_OFFLINE=1 python benchmarks/bench_pretrain.py --device cuda [--epochs N] [--threads T]
                                                         [--config FILE] [--json FILE]

It runs ``faceprompt pretrain``'s own loop with the recipe's config on stand-in data: as many rows per
dataset, split and label as the embedded model's ``recipe.json`` records (or, with ``--counts-from-data``,
as the config's datasets hold in the shared data folder: labels only, no images are read), with random
pixels. Every epoch
takes the same steps, at the same batch size, over captions drawn from the same labels as the real run,
so its time is the real run's time; the model it trains is meaningless and goes to a temporary folder.
With ``--epochs`` below the recipe's, the full-length time is extrapolated from the measured epochs (the
last epoch, without patch dropping, is always among them). With ``--fraction F`` every count (and the
epoch's expression draws) is scaled by F and the times by 1/F: a quick estimate on a busy machine.

On a shared machine the wall clock measures the neighbours too. The script also reports the share of the
cores the run got (its CPU seconds over wall seconds x threads) and the load average, and scales the
estimate by that share to what the same run would take on free cores (assuming the threads keep busy). With
``--fraction`` the per-epoch zero-shot check is scaled down too.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faceprompt.pretraining.loop import pretrain  # noqa: E402
from faceprompt.backbones import PRETRAINED_DIR  # noqa: E402
from faceprompt.io import write_json_atomic  # noqa: E402
from faceprompt.pretraining.config import PretrainConfig  # noqa: E402
from faceprompt.pretraining.data import collect_rows, split_counts, stand_in_data  # noqa: E402


def epoch_seconds(history: list[dict]) -> list[float]:
    ends = [0.0] + [entry["seconds"] for entry in history]
    return [b - a for a, b in zip(ends, ends[1:])]


def scaled_counts(splits: dict, fraction: float) -> dict:
    """``split_counts``' table with every label count scaled by ``fraction``; rows as many as the fullest
    label column, so every row keeps a label (an unlabelled image cannot be captioned)."""
    def scale(entry: dict) -> dict:
        out = {column: {label: int(k * fraction) for label, k in counts.items() if int(k * fraction)}
               for column, counts in entry.items() if column != "rows"}
        out["rows"] = max([sum(counts.values()) for counts in out.values()], default=0)
        return out

    return {dataset: {split: scale(entry) for split, entry in by_split.items()} for dataset, by_split in splits.items()}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs/pretrain_faceclip_tiny.yaml"))
    parser.add_argument("--recipe", default=str(PRETRAINED_DIR / "faceclip-tiny/recipe.json"),
                        help="recipe.json whose split and label counts the stand-in data copies")
    parser.add_argument("--counts-from-data", action="store_true",
                        help="count rows per split and label in the config's datasets instead of --recipe's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="epochs to run (default: the config's)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the config's)")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="scale the data (and the epoch's expression draws) by this and the times by 1/it")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must be in (0, 1]")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    cfg = PretrainConfig.load(args.config)
    if args.counts_from_data:
        splits = split_counts(collect_rows(cfg))
    else:
        splits = json.loads(Path(args.recipe).read_text(encoding="utf-8"))["splits"]
    if args.fraction < 1:
        splits = scaled_counts(splits, args.fraction)
    full_epochs = cfg.epochs
    epochs = min(args.epochs or full_epochs, full_epochs)
    if epochs < full_epochs and epochs <= cfg.unmasked_epochs:
        parser.error(f"--epochs must exceed the {cfg.unmasked_epochs} unmasked epoch(s) to extrapolate")
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as tmp:
        cfg = cfg.replace(device=args.device, epochs=epochs, threads=args.threads or cfg.threads,
                          out=f"{tmp}/model", work_dir=f"{tmp}/work")
        if args.fraction < 1:  # the per-epoch zero-shot check shrinks with the data, as the draws do
            cfg = cfg.replace(val_limit=round(cfg.val_limit * args.fraction),
                              emotion_samples=cfg.emotion_samples and max(cfg.batch_size,
                                                                          round(cfg.emotion_samples * args.fraction)))
        data = stand_in_data(splits, cfg.image_size, seed=cfg.seed)
        cpu_start, wall_start = _cpu_seconds(), time.perf_counter()
        result = pretrain(cfg, progress=False, data=data)
        share = (_cpu_seconds() - cpu_start) / ((time.perf_counter() - wall_start) * cfg.threads)
        history = json.loads((Path(cfg.out) / "recipe.json").read_text(encoding="utf-8"))["history"]
    per_epoch = [s / args.fraction for s in epoch_seconds(history)]
    masked, unmasked = per_epoch[:-cfg.unmasked_epochs], per_epoch[-cfg.unmasked_epochs:]
    masked_mean = sum(masked) / len(masked) if masked else 0.0
    estimate = masked_mean * (full_epochs - len(unmasked)) + sum(unmasked)
    train_rows = int((data.rows["split"] == "train").sum())
    print(f"device: {result.device}; {len(data.rows)} stand-in rows ({train_rows} train), "
          f"{cfg.image_size} px, batch {cfg.batch_size}")
    print("epoch seconds: " + " ".join(f"{s:.1f}" for s in per_epoch))
    print(f"{epochs} epochs trained in {result.seconds:.1f} s; the recipe's {full_epochs} epochs: "
          f"{estimate / 60:.1f} min" + ("" if epochs == full_epochs and args.fraction == 1 else " (extrapolated)"))
    load = os.getloadavg()
    print(f"the run had {100 * min(share, 1):.0f} % of its {cfg.threads} threads' time (load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}); on free cores: about {estimate * min(share, 1) / 60:.1f} min")
    if args.json:
        write_json_atomic(args.json, {"device": result.device, "epochs": epochs, "recipe_epochs": full_epochs,
                                      "epoch_seconds": per_epoch, "train_seconds": result.seconds,
                                      "recipe_seconds_estimate": estimate, "rows": len(data.rows),
                                      "fraction": args.fraction, "core_share": share, "load_average": load,
                                      "free_cores_seconds_estimate": estimate * min(share, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
