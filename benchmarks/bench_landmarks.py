"""Which five-point landmark model: success rate and time per face on real faces of the shared data.

    python benchmarks/bench_landmarks.py [--per-dataset 200] [--json OUT]

Candidates (weights shipped in registry packages): facenet-pytorch's MTCNN (eye centres, nose tip, mouth
corners) and dlib's 5-point shape predictor from face-recognition-models (eye corners, nose base), found
after dlib's HOG detector (upsampled twice for images under 100 px, as small faces need). Success = five
points found; time includes finding the face, on one torch thread. Images: a seeded sample of UTKFace
chips, facial_expressions photos and FER+ ``FER2013Test`` 48 px faces.
"""
from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from faceprompt.data.images import load_rgb
from faceprompt.io import write_json_atomic
from faceprompt.provenance import run_record
from faceprompt.locations import shared_data_root

FOLDERS = {"UTKFace chips": ("UTKFace", "*.jpg"), "facial_expressions": ("facial_expressions/images", "*.jpg"),
           "FER+ Test (48 px)": ("FERPlus/FER2013Test", "*.png")}


def dlib_five_point():
    """dlib's HOG detector + 5-point predictor; the predictor's path is found without importing the package
    (its __init__ needs pkg_resources, gone from recent setuptools)."""
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise ImportError("pip install face-recognition-models")
    model = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_5_face_landmarks.dat"
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model))

    def locate(rgb: np.ndarray) -> bool:
        rects = detector(rgb, 2 if min(rgb.shape[:2]) < 100 else 1)
        if not rects:
            return False
        return predictor(rgb, max(rects, key=lambda r: r.area())).num_parts == 5

    return locate


def mtcnn_five_point():
    from faceprompt.align import Landmarker

    landmarker = Landmarker()
    return lambda rgb: landmarker.locate(rgb) is not None


def measure(models: dict, images: list[np.ndarray]) -> dict:
    """Per model: faces with five points found, and milliseconds per image (finding the face included)."""
    cells = {}
    for name, locate in models.items():
        start = time.perf_counter()
        found = sum(bool(locate(rgb)) for rgb in images)
        cells[name] = {"found": found, "ms_per_image": 1000 * (time.perf_counter() - start) / len(images)}
    return cells


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-dataset", type=int, default=200)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = shared_data_root(Path(__file__).resolve().parents[1])
    models = {"MTCNN": mtcnn_five_point(), "dlib 5-point": dlib_five_point()}
    print(f"{'dataset':20s} " + "  ".join(f"{m:>24s}" for m in models))
    results = {}
    for title, (folder, pattern) in FOLDERS.items():
        files = sorted((data / folder).glob(pattern))
        if not files:
            print(f"{title:20s} skipped: {data / folder} is absent")
            continue
        files = random.Random(0).sample(files, min(args.per_dataset, len(files)))
        cells = measure(models, [np.asarray(load_rgb(f)) for f in files])
        results[title] = {"images": len(files), "models": cells}
        print(f"{title:20s} " + "  ".join(f"{c['found']:3d}/{len(files)} {c['found'] / len(files):6.1%} "
                                          f"{c['ms_per_image']:5.1f} ms".rjust(24) for c in cells.values()))
    if args.json_out:
        argv = sys.argv if argv is None else ["benchmarks/bench_landmarks.py", *argv]
        write_json_atomic(args.json_out, {**run_record(argv), "per_dataset": args.per_dataset, "threads": 1,
                                          "results": results})


if __name__ == "__main__":
    main()
