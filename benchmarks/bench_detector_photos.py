"""Each detector through the demo's own path on photos that are no dataset's crops: faces found, false boxes.

    HF_HUB_OFFLINE=1 python benchmarks/bench_detector_photos.py [--detectors blazeface dlib] [--json OUT]

Photos (each with the number of faces it holds):

* scikit-image's samples (``pip install -e '.[photos-bench]'``): an astronaut's portrait with a round badge on
  her jacket (1), a cameraman turned to his camera (1), a cat, a cup of coffee, a rocket (0 each);
* matplotlib's portrait of Grace Hopper (1) as shipped, under a warm cast, dim, in black and white, tilted by
  25 degrees, and three copies of three sizes side by side (3) (``faceprompt.book.photos``);
* three groups pasted on a cluttered background (the cat, the coffee, the rocket, 960x540): UTKFace and
  facial_expressions photos of 90-200 px with their own backgrounds, children and people over 75 among them
  (from the shared data; left out without it).

Per detector and photo: the faces labelled, how many of those lie on a face (a labelled box whose centre is in
a pasted face, or any box on a photo of one face: at most the photo's count), the false ones, the dropped
boxes with their reasons, and the milliseconds of detection. One torch thread.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from faceprompt.book.photos import condition_photos
from faceprompt.demo.pipeline import FacePipeline
from faceprompt.io import write_json_atomic
from faceprompt.locations import shared_data_root
from faceprompt.provenance import run_record

CHILD_OR_OLD = (4, 5, 6, 7, 75, 80, 85)  # UTKFace ages pasted beside the adults


def sample_photos() -> dict[str, tuple[Image.Image, int]]:
    """Name -> (photo, faces in it) for scikit-image's samples, or {} without scikit-image."""
    try:
        from skimage import data
    except ImportError:
        print("scikit-image is not installed: its sample photos are left out", file=sys.stderr)
        return {}
    rgb = lambda a: Image.fromarray(a).convert("RGB")  # noqa: E731
    return {"astronaut": (rgb(data.astronaut()), 1), "cameraman": (rgb(data.camera()), 1),
            "cat": (rgb(data.chelsea()), 0), "coffee": (rgb(data.coffee()), 0), "rocket": (rgb(data.rocket()), 0)}


def pasted_group(seed: int, background: Image.Image, data: Path) -> tuple[Image.Image, list[tuple]]:
    """Photos of faces pasted left to right at random heights and sizes on ``background``; (photo, regions)."""
    rng = random.Random(seed)
    canvas = background.resize((960, 540))
    adults = sorted((data / "facial_expressions" / "images").glob("*.jpg"))
    utk = sorted((data / "UTKFace").glob("*.jpg*"))
    others = [p for p in rng.sample(utk, min(400, len(utk))) if int(p.name.split("_")[0]) in CHILD_OR_OLD]
    regions, x = [], 10
    for path in rng.sample(adults, 4) + others[:3]:
        side = rng.randint(90, 200)
        if x + side > canvas.width:
            break
        y = rng.randint(80, canvas.height - side)
        canvas.paste(Image.open(path).convert("RGB").resize((side, side)), (x, y))
        regions.append((x, y, x + side, y + side))
        x += side + rng.randint(5, 30)
    return canvas, regions


def on_a_face(box, regions) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in regions)


def check(pipeline: FacePipeline, photo: Image.Image, faces: int, regions: list | None) -> dict:
    start = time.perf_counter()
    result = pipeline.annotate(photo)
    seconds = time.perf_counter() - start
    boxes = [f.box for f in result.faces]
    true = sum(on_a_face(b, regions) for b in boxes) if regions is not None else min(len(boxes), faces)
    return {"faces": faces, "labelled": len(boxes), "on_a_face": true, "false": len(boxes) - true,
            "dropped": [d["reason"] for d in result.dropped], "ms": round(seconds * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=["blazeface", "dlib"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    photos = {name: (photo, count, None) for name, (photo, count) in sample_photos().items()}
    photos.update({f"portrait, {name}": (photo, 3 if name == "three sizes" else 1, None)
                   for name, photo in condition_photos().items()})
    data = shared_data_root(Path(__file__).resolve().parents[1])
    backgrounds = {name: photos[name][0] for name in ("cat", "coffee", "rocket") if name in photos}
    if (data / "UTKFace").is_dir() and (data / "facial_expressions").is_dir():
        for seed, (name, background) in enumerate(backgrounds.items()):
            group, regions = pasted_group(seed, background, data)
            photos[f"group on the {name}"] = (group, len(regions), regions)
    results = {}
    for detector in args.detectors:
        pipeline = FacePipeline.load(detector=detector).warm_up()
        results[detector] = {name: check(pipeline, photo, count, regions)
                             for name, (photo, count, regions) in photos.items()}
    print(f"{'photo':<28} {'faces':>5} | " + " | ".join(f"{d:>22}" for d in args.detectors))
    for name, (_, count, _) in photos.items():
        cells = [results[d][name] for d in args.detectors]
        print(f"{name:<28} {count:>5} | " + " | ".join(
            f"{c['on_a_face']:>3} found {c['false']:>2} false {len(c['dropped']):>2} dropped" for c in cells))
    for detector in args.detectors:
        rows = results[detector].values()
        print(f"{detector}: {sum(r['on_a_face'] for r in rows)} of {sum(r['faces'] for r in rows)} faces, "
              f"{sum(r['false'] for r in rows)} false boxes")
    if args.json:
        argv = sys.argv if argv is None else ["benchmarks/bench_detector_photos.py", *argv]
        write_json_atomic(args.json, {**run_record(argv), "threads": 1, "results": results})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
