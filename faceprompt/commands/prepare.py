"""`faceprompt prepare DATASET --root PATH --out DIR`: a downloaded dataset -> face crops + one manifest
(``faceprompt.data.prepare.prepare_dataset``).
"""
from __future__ import annotations

import argparse
import os

from faceprompt.align import CROP_MODES
from faceprompt.data.adapters import ADAPTERS
from faceprompt.data.prepare import NO_FACE_POLICIES, prepare_dataset
from faceprompt.detect import DEFAULT_DETECTOR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=ADAPTERS, help="which dataset layout --root holds")
    parser.add_argument("--root", help="the dataset folder as downloaded (synthetic: where to generate)")
    parser.add_argument("--out", required=True, help="output folder: manifest.csv, crops/, splits.csv")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"face detector (default {DEFAULT_DETECTOR})")
    detect = parser.add_mutually_exclusive_group()
    detect.add_argument("--no-detect", dest="detect", action="store_false", default=None,
                        help="crop the centred square of each image (default for utkface, rafdb, synthetic)")
    detect.add_argument("--detect", dest="detect", action="store_true", help="detect faces even where off by default")
    parser.add_argument("--margin", type=float, default=0.25, help="margin around the face, fraction of its size")
    parser.add_argument("--size", type=int, default=224, help="crop side in pixels (default 224)")
    parser.add_argument("--crop", choices=CROP_MODES, default="aligned",
                        help="aligned: landmarks onto the face template (default); box: detection box + margin")
    parser.add_argument("--limit", type=int, help="prepare a seeded random subset of N images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of --limit")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes for cropping")
    parser.add_argument("--no-face", choices=NO_FACE_POLICIES, default="keep",
                        help="image with no detected face: keep a centred crop (default) or drop it")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--ignore-official-splits", dest="keep_official_splits", action="store_false",
                        help="split every row by seed, even where the dataset has an official split")
    parser.add_argument("--resplit", action="store_true", help="ignore splits stored by earlier runs in --out")
    parser.add_argument("--splits", type=lambda v: tuple(s.strip() for s in v.split(",")),
                        help="crop only these splits, e.g. val,test (every image is still assigned its split)")
    parser.add_argument("--ages", help="vggface2: CSV with columns path,age")
    parser.add_argument("--lfw-lists", help="facial_expressions: folder with LFW male_names.txt / female_names.txt")
    parser.add_argument("--n", type=int, default=1500, help="synthetic: how many faces to generate")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    adapter_options = {"ages": args.ages, "lfw_lists": args.lfw_lists}
    if args.dataset == "synthetic":
        adapter_options["n"] = args.n
    report = prepare_dataset(
        args.dataset, args.root, args.out, detector=args.detector, detect=args.detect, margin=args.margin,
        size=args.size, crop=args.crop, limit=args.limit, seed=args.seed, workers=args.workers, no_face=args.no_face,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction,
        keep_official_splits=args.keep_official_splits, resplit=args.resplit, splits=args.splits,
        progress=not args.quiet,
        **{k: v for k, v in adapter_options.items() if v is not None},
    )
    print(report.summary())
    return 0 if report.rows else 1
