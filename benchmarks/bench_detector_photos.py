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

Every face has a region: marked by eye on the sample photos and the portrait (``FACES``), carried through
each condition's geometry, and where it was pasted in the groups. Per detector and photo: the boxes labelled,
the faces found (regions holding a labelled box's centre), the false boxes (labelled boxes whose centre lies
in no face, or a second one on a face), the boxes dropped with their reasons, and the median milliseconds of
the detector alone over three calls after a warm-up. One torch thread.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from faceprompt.demo.pipeline import FacePipeline
from faceprompt.io import write_json_atomic
from faceprompt.locations import shared_data_root
from faceprompt.provenance import run_record

CHILD_OR_OLD = (4, 5, 6, 7, 75, 80, 85)  # UTKFace ages pasted beside the adults
# Face regions (x0, y0, x1, y1) marked by eye, generously, on the photos as shipped (pixels).
FACES = {"astronaut": (160, 60, 290, 190), "cameraman": (175, 110, 275, 210),
         "portrait": (150, 120, 380, 360)}  # matplotlib's grace_hopper.jpg, 512 x 600


def sample_photos() -> dict[str, tuple[Image.Image, list[tuple]]]:
    """Name -> (photo, face regions) for scikit-image's samples, or {} without scikit-image."""
    try:
        from skimage import data
    except ImportError:
        print("scikit-image is not installed: its sample photos are left out", file=sys.stderr)
        return {}
    rgb = lambda a: Image.fromarray(a).convert("RGB")  # noqa: E731
    return {"astronaut": (rgb(data.astronaut()), [FACES["astronaut"]]),
            "cameraman": (rgb(data.camera()), [FACES["cameraman"]]),
            "cat": (rgb(data.chelsea()), []), "coffee": (rgb(data.coffee()), []), "rocket": (rgb(data.rocket()), [])}


def portrait_photos() -> dict[str, tuple[Image.Image, list[tuple]]]:
    """The portrait under each condition of ``faceprompt.book.photos``, with its face region carried along."""
    from faceprompt.book.photos import condition_photos, portrait_path

    shown = condition_photos()
    if not shown:
        return {}
    scale = shown["as shipped"].width / Image.open(portrait_path()).width
    face = tuple(v * scale for v in FACES["portrait"])
    width, height = shown["as shipped"].size
    photos = {name: (photo, [face]) for name, photo in shown.items()}
    photos["tilted 25°"] = (shown["tilted 25°"], [turned(face, 25, width / 2, height / 2)])
    regions, x = [], 0.0
    for share in (1.0, 0.7, 0.45):  # photos.group's sizes, side by side, bottoms aligned
        regions.append((x + face[0] * share, height * (1 - share) + face[1] * share, x + face[2] * share,
                        height * (1 - share) + face[3] * share))
        x += round(width * share)
    photos["three sizes"] = (shown["three sizes"], regions)
    return {f"portrait, {name}": value for name, value in photos.items()}


def turned(region: tuple, degrees: float, cx: float, cy: float) -> tuple:
    """The box around ``region`` turned counter-clockwise by ``degrees`` about (cx, cy), as PIL's rotate."""
    angle = math.radians(degrees)
    corners = [(x, y) for x in region[0::2] for y in region[1::2]]
    moved = [(cx + (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle),
              cy - (x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)) for x, y in corners]
    xs, ys = zip(*moved)
    return min(xs), min(ys), max(xs), max(ys)


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


def centre_in(box, region) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


def check(pipeline: FacePipeline, photo: Image.Image, regions: list[tuple]) -> dict:
    rgb = np.asarray(photo)
    pipeline.detect(rgb)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        pipeline.detect(rgb)
        times.append(time.perf_counter() - start)
    result = pipeline.annotate(photo)
    boxes = [f.box for f in result.faces]
    found = [any(centre_in(b, r) for b in boxes) for r in regions]
    on_faces = sum(any(centre_in(b, r) for r in regions) for b in boxes)
    return {"faces": len(regions), "labelled": len(boxes), "on_a_face": sum(found),
            "false": len(boxes) - sum(found), "off_every_face": len(boxes) - on_faces,
            "dropped": [d["reason"] for d in result.dropped], "detect_ms": round(1000 * statistics.median(times), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=["blazeface", "dlib"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    photos = {**sample_photos(), **portrait_photos()}
    data = shared_data_root(Path(__file__).resolve().parents[1])
    backgrounds = {name: photos[name][0] for name in ("cat", "coffee", "rocket") if name in photos}
    if (data / "UTKFace").is_dir() and (data / "facial_expressions").is_dir():
        for seed, (name, background) in enumerate(backgrounds.items()):
            photos[f"group on the {name}"] = pasted_group(seed, background, data)
    results = {}
    for detector in args.detectors:
        pipeline = FacePipeline.load(detector=detector).warm_up()
        results[detector] = {name: check(pipeline, photo, regions) for name, (photo, regions) in photos.items()}
    print(f"{'photo':<28} {'faces':>5} | " + " | ".join(f"{d:>30}" for d in args.detectors))
    for name, (_, regions) in photos.items():
        count = len(regions)
        cells = [results[d][name] for d in args.detectors]
        print(f"{name:<28} {count:>5} | " + " | ".join(
            f"{c['on_a_face']:>3} found {c['false']:>2} false {len(c['dropped']):>2} dropped {c['detect_ms']:>6.1f} ms"
            for c in cells))
    for detector in args.detectors:
        rows = results[detector].values()
        print(f"{detector}: {sum(r['on_a_face'] for r in rows)} of {sum(r['faces'] for r in rows)} faces, "
              f"{sum(r['false'] for r in rows)} false boxes, median detection "
              f"{statistics.median(r['detect_ms'] for r in rows):.1f} ms")
    if args.json:
        argv = sys.argv if argv is None else ["benchmarks/bench_detector_photos.py", *argv]
        write_json_atomic(args.json, {**run_record(argv), "threads": 1, "results": results})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
