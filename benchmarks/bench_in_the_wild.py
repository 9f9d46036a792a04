"""The demo's own path (detect -> crop -> classify) on held-out photos, scored against their labels.

    HF_HUB_OFFLINE=1 python benchmarks/bench_in_the_wild.py [--crop box|aligned] [--per-dataset 300]
                                                            [--detector NAME] [--json OUT]

Images: the UTKFace and facial_expressions images the shipped model held out (its recorded splits,
``book.leakage.model_splits``) and FER+ ``FER2013Test``, from ``../shared/data`` (or
``$FACEPROMPT_SHARED_DATA``), a seeded sample of ``--per-dataset`` each. Every image goes through
``FacePipeline.annotate`` with the demo's settings; the largest labelled face is scored. Next to it, the
crop-level figure: the same image cropped as ``faceprompt prepare`` crops it without a detector
(``align.face_crop(image, None, ...)`` in the pipeline's crop mode), what ``faceprompt evaluate`` scores. Printed per
dataset: detection rate (a face found, or a face-sized photo taken whole: those counted apart), accuracy per task (through the detector / crop level), faces per second, aligned
crops that fell back, the detector-score quantiles of the surest detection (how ``MIN_SCORES`` in
``faceprompt/demo/pipeline.py`` is calibrated: the 1% quantile keeps 99% of true faces), the scores of the
other boxes labelled in these single-face photos (nearly all false) and the boxes dropped unlabelled, by reason.
"""
from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
import time
from pathlib import Path

import numpy as np
import torch

from faceprompt.align import face_crop
from faceprompt.book.leakage import model_splits
from faceprompt.data.images import load_rgb
from faceprompt.locations import shared_data_root
from faceprompt.data.adapters import get_adapter
from faceprompt.demo.pipeline import FacePipeline
from faceprompt.io import write_json_atomic
from faceprompt.provenance import run_record
from faceprompt.predict import default_backbone

DATASETS = {"utkface": "UTKFace", "facial_expressions": "facial_expressions", "ferplus": "FERPlus"}


def test_rows(dataset: str, root: Path, backbone: str, count: int, seed: int = 0) -> list[dict]:
    """A seeded sample of the held-out rows: the model's recorded test split, else the official one."""
    rows = get_adapter(dataset).scan(root).rows
    recorded = model_splits(backbone)
    if recorded is not None and dataset in set(recorded["dataset"]):
        held_out = set(recorded[(recorded["dataset"] == dataset) & (recorded["split"] == "test")]["key"])
        rows = [r for r in rows if Path(r["path"]).relative_to(root).as_posix() in held_out]
    else:
        rows = [r for r in rows if r["split"] == "test"]
    return random.Random(seed).sample(rows, min(count, len(rows)))


def score(pipeline: FacePipeline, rows: list[dict]) -> dict:
    """Detection rate, per-task accuracy of the largest face and of the whole image, speed, score quantiles."""
    tasks = {t.name: t.classes for t in pipeline.classifier.model.tasks}
    label_of = {"gender": "gender", "age": "age_bin", "emotion": "emotion"}
    hits = {t: [0, 0] for t in tasks}  # through the detector: right, labelled
    whole = {t: [0, 0] for t in tasks}
    found, taken_whole, fallbacks, seconds, scores, others, dropped = 0, 0, 0, 0.0, [], [], []
    for row in rows:
        image = load_rgb(row["path"])
        start = time.perf_counter()
        result = pipeline.annotate(image)
        seconds += time.perf_counter() - start
        fallbacks += result.crop_fallbacks
        face = max(result.faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)
        taken_whole += any(f.whole_image for f in result.faces)
        labelled = sorted((f.score for f in result.faces if not f.whole_image), reverse=True)
        detected = labelled + [d["score"] for d in result.dropped]
        if detected:
            scores.append(max(detected))
        # Single-face photos: the surest labelled box is the face, any other labelled one (almost always) a false
        # one; boxes the pipeline dropped (low score, too small, not a face) are counted by their reason.
        others += labelled[1:]
        dropped += [d["reason"].split(":")[0] if ":" in d["reason"] else d["reason"].split()[0]
                    for d in result.dropped]  # "not a face", "score", "size"
        found += face is not None
        prepared = face_crop(image, None, pipeline.crop_size, pipeline.crop_mode, pipeline.margin).image
        crop_level = pipeline.classifier.predict([prepared])[0]
        for task, classes in tasks.items():
            truth = row.get(label_of.get(task, task), "")
            if truth not in classes:
                continue
            whole[task][0] += crop_level[task].label == truth
            whole[task][1] += 1
            hits[task][1] += 1  # a missed face counts as wrong: the demo would show nothing
            hits[task][0] += face is not None and face.predictions[task].label == truth
    n = max(len(rows), 1)
    return {"images": len(rows), "detection_rate": found / n, "whole_image": taken_whole, "crop_fallbacks": fallbacks,
            "faces_per_s": len(rows) / seconds if seconds else 0.0,
            "accuracy": {t: h[0] / h[1] for t, h in hits.items() if h[1]},
            "crop_level_accuracy": {t: h[0] / h[1] for t, h in whole.items() if h[1]},
            "score_quantiles": {q: float(np.quantile(scores, q)) for q in (0.01, 0.05, 0.5)} if scores else {},
            "other_box_scores": sorted(others), "dropped_boxes": dict(Counter(dropped))}


def print_report(crop: str, detector: str, results: dict) -> None:
    print(f"crop={crop} detector={detector}")
    for name, r in results.items():
        acc = "  ".join(f"{t} {a:.1%} (crop {r['crop_level_accuracy'][t]:.1%})" for t, a in r["accuracy"].items())
        quantiles = " ".join(f"q{int(q * 100)}={v:.3f}" for q, v in r["score_quantiles"].items())
        extra = r["other_box_scores"]
        extra = f"other labelled boxes {len(extra)}" + (f" (scores {extra[0]:.3f}..{extra[-1]:.3f})" if extra else "")
        extra += f", dropped {sum(r.get('dropped_boxes', {}).values())}"
        print(f"  {name:18s} n={r['images']:4d} labelled {r['detection_rate']:.1%} ({r['whole_image']} whole)  fallbacks "
              f"{r['crop_fallbacks']:3d}  {r['faces_per_s']:.1f} img/s  {acc}  scores {quantiles}  {extra}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crop", choices=("box", "aligned"), default="aligned")
    parser.add_argument("--per-dataset", type=int, default=300)
    parser.add_argument("--detector", default=None)
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--min-score", type=float, default=None, help="default: the demo's calibrated value")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompts", default=None, metavar="RUN_DIR", help="a trained run (default: the shipped one)")
    parser.add_argument("--zero-shot", action="store_true", help="the bare backbone, no tuned run")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = shared_data_root(Path(__file__).resolve().parents[1])
    backbone = args.backbone or default_backbone()
    pipeline = FacePipeline.load(backbone, run_dir=args.prompts, detector=args.detector, crop=args.crop,
                                 min_score=args.min_score, zero_shot=args.zero_shot)
    print(f"model: {pipeline.classifier.describe()}")
    pipeline.warm_up()
    results = {}
    for dataset, folder in DATASETS.items():
        if not (data / folder).is_dir():
            print(f"  {dataset}: skipped, {data / folder} is absent")
            continue
        results[dataset] = score(pipeline, test_rows(dataset, data / folder, backbone, args.per_dataset))
    print_report(args.crop, pipeline.detector.name, results)
    if args.json_out:
        argv = sys.argv if argv is None else ["benchmarks/bench_in_the_wild.py", *argv]
        write_json_atomic(args.json_out, {**run_record(argv), "crop": args.crop, "detector": pipeline.detector.name,
                                          "backbone": backbone, "model": pipeline.classifier.describe(),
                                          "per_dataset": args.per_dataset,
                                          "min_score": pipeline.min_score, "threads": args.threads,
                                          "results": results})


if __name__ == "__main__":
    main()
