"""Per-frame time of the demo pipeline on the CPU: a 640x480 photo with 1 and with 6 real faces.

    HF_HUB_OFFLINE=1 python benchmarks/bench_demo.py [--repeats 10] [--threads 1 2] [--backbone NAME]
                                                     [--detector NAME]

The photos paste UTKFace chips from ``../shared/data`` (or ``$FACEPROMPT_SHARED_DATA``) onto a plain
640x480 canvas at run time. After a warm-up, each photo goes through ``FacePipeline.annotate`` ``--repeats``
times; the table gives the median and the 90th percentile of detection, classification and the whole frame,
once per torch thread count (``--threads``; default: 1 and torch's default). "classify" counts the landmarks
and crops too; ``bench_demo_cpu.py`` splits every stage. On a busy machine one thread
can be much faster for the small per-frame batches: threads that wait for a core stall every operation.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import demo_helpers as h  # noqa: E402

from faceprompt.demo.pipeline import FacePipeline  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench(pipeline: FacePipeline, photo, repeats: int) -> dict[str, list[float]]:
    pipeline.annotate(photo)  # warm-up for this batch size
    times = {"detect": [], "classify": [], "total": []}
    for _ in range(repeats):
        result = pipeline.annotate(photo)
        times["detect"].append(result.detect_ms)
        times["classify"].append(result.align_ms + result.classify_ms)  # landmarks, crops and the forward
        times["total"].append(result.total_ms)
    times["faces"] = [len(result.faces)]
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--backbone", default=None, help="default: the package's default backbone")
    parser.add_argument("--detector", default=None, help="default: detect.demo_detector()")
    parser.add_argument("--threads", type=int, nargs="+", default=None, help="torch intra-op thread counts")
    args = parser.parse_args()
    threads = args.threads or sorted({1, torch.get_num_threads()})
    if h.utkface_dir() is None:
        sys.exit(f"shared data not found: {h.shared_data_root() / 'UTKFace'} (set FACEPROMPT_SHARED_DATA)")
    pipeline = FacePipeline.load(args.backbone, detector=args.detector).warm_up()
    print(f"backbone {pipeline.classifier.backbone.name} ({pipeline.classifier.model.method}), "
          f"detector {pipeline.detector.name}, {args.repeats} repeats, 640x480 photo")
    print(f"{'threads':>7} {'faces':>5} {'found':>5} | {'detect ms':>16} | {'classify ms':>16} | {'frame ms':>16}")
    print(f"{'':>7} {'':>5} {'':>5} | " + " | ".join([f"{'median':>7} {'p90':>8}"] * 3))
    photos = {n: h.paste_faces(h.detectable_faces(n))[0] for n in (1, 6)}
    for count in threads:
        torch.set_num_threads(count)
        for n, photo in photos.items():
            t = bench(pipeline, photo, args.repeats)
            cells = [f"{statistics.median(t[k]):7.1f} {percentile(t[k], 0.9):8.1f}"
                     for k in ("detect", "classify", "total")]
            print(f"{count:>7} {n:>5} {t['faces'][0]:>5} | " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
