"""Face detectors on the shared real images: detection rate and crops per second on 2 cores.

    python benchmarks/bench_detect.py [--n 300] [--workers 2] [--detectors haar dlib mtcnn]

Takes a seeded sample of ``--n`` UTKFace chips and ``--n`` facial_expressions images from
``../shared/data`` (or ``$FACEPROMPT_SHARED_DATA``) and runs the whole crop step (load, detect, crop to
224 px, save JPEG) for each detector in a pool of ``--workers`` processes. Prints one table.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path

from faceprompt.detect import available_detectors
from faceprompt.locations import shared_data_root
from faceprompt.data.prepare import CropJob, _init_worker, crop_one


def shared_data() -> Path:
    return shared_data_root(Path(__file__).resolve().parents[1])


def sample_images(n: int, seed: int) -> dict[str, list[Path]]:
    root = shared_data()
    sets = {"utkface": root / "UTKFace", "facial_expressions": root / "facial_expressions" / "images"}
    missing = [str(p) for p in sets.values() if not p.is_dir()]
    if missing:
        sys.exit(f"shared data not found: {', '.join(missing)} (set FACEPROMPT_SHARED_DATA)")
    picked = {}
    for name, folder in sets.items():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg")
        picked[name] = random.Random(seed).sample(files, min(n, len(files)))
    return picked


def bench(detector: str, images: list[Path], workers: int, out: Path) -> tuple[float, list[dict]]:
    jobs = [CropJob(str(p), str(p), str(out / f"{i}.jpg"), True, detector, 0.25, 224) for i, p in enumerate(images)]
    context = mp.get_context("fork")
    with context.Pool(workers, initializer=_init_worker, initargs=(detector,)) as pool:
        pool.map(crop_one, jobs[:workers * 2], chunksize=1)  # warm-up: model load in every worker
        start = time.perf_counter()
        outcomes = pool.map(crop_one, jobs, chunksize=8)
        seconds = time.perf_counter() - start
    return seconds, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="images per dataset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detectors", nargs="*", default=None)
    args = parser.parse_args()
    sets = sample_images(args.n, args.seed)
    detectors = args.detectors or available_detectors()
    print(f"{args.n} images per set, {args.workers} worker processes, crop 224 px, margin 0.25")
    header = f"{'detector':<9} {'crops/s':>8} " + " ".join(f"{name + ' found':>25}" for name in sets)
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for detector in detectors:
            images = [p for files in sets.values() for p in files]
            seconds, outcomes = bench(detector, images, args.workers, Path(tmp))
            rates, offset = [], 0
            for files in sets.values():
                part = outcomes[offset:offset + len(files)]
                offset += len(files)
                found = sum(o["status"] == "face" for o in part)
                rates.append(f"{found:>4}/{len(part)} = {100 * found / len(part):5.1f}%")
            print(f"{detector:<9} {len(images) / seconds:8.1f} " + " ".join(f"{r:>25}" for r in rates))


if __name__ == "__main__":
    main()
