"""`faceprompt predict IMAGE`: per-task class and probabilities of one face image, as JSON."""
from __future__ import annotations

import argparse
import json

from faceprompt.commands.options import add_compile_arguments, add_model_arguments, device, positive_int
from faceprompt.align import CROP_MODES
from faceprompt.predict import DEFAULT_CROP, FaceClassifier, as_json, compile_mode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="a face image (already cropped to the face)")
    add_model_arguments(parser)
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--crop", choices=CROP_MODES, default=DEFAULT_CROP,
                        help=f"aligned: landmarks onto the face template; box: the image as given "
                             f"(default {DEFAULT_CROP})")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is often faster on a busy machine)")
    add_compile_arguments(parser, static=True)


def run(args: argparse.Namespace) -> int:
    from faceprompt.data.images import load_face

    face = load_face(args.image)  # a bad image fails in a second, before the model loads
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    classifier = FaceClassifier.load(args.backbone, run_dir=args.prompts, weights=args.weights, device=args.device,
                                     compile=compile_mode(args.compile, args.static), zero_shot=args.zero_shot)
    crop = classifier.crop_image(face, args.crop)
    used = {"asked": args.crop, "used": crop.mode, **({"why": crop.reason} if crop.reason else {})}
    result = {"image": args.image, "model": classifier.describe(), "backbone": classifier.backbone.name,
              "method": classifier.model.method, "crop": used,
              "predictions": as_json(classifier.predict([crop.image])[0])}
    print(json.dumps(result, indent=2))
    return 0
