"""Option types for commands: counts, sizes and margins are checked when the command line is parsed,
so a bad value is a usage error naming the option, not a failure deep inside a run."""
from __future__ import annotations

import argparse
import math


def _bounded(text: str, kind: type, what: str, low: float, high: float = math.inf) -> int | float:
    """``text`` as ``kind`` within [low, high], or the usage error argparse prints after the option's name."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A count or size: 1 or more."""
    return _bounded(text, int, "a whole number of 1 or more", 1)


def non_negative_int(text: str) -> int:
    """An index: 0 or more."""
    return _bounded(text, int, "a whole number of 0 or more", 0)


def fraction(text: str) -> float:
    """A share or a score: from 0 to 1."""
    return _bounded(text, float, "a number from 0 to 1", 0.0, 1.0)


def non_negative_float(text: str) -> float:
    """A size or a rate: 0 or more."""
    return _bounded(text, float, "a number of 0 or more", 0.0)


def positive_float(text: str) -> float:
    """A rate or a peak: more than 0."""
    value = _bounded(text, float, "a number more than 0", 0.0)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a number more than 0, got {text!r}")
    return value


def margin(text: str) -> float:
    """A crop margin per side, as a fraction of the face: up to 2 (a crop 5 times the face), since a larger one
    pads the frame to a size that exhausts memory and shows no face anyway."""
    return _bounded(text, float, "a fraction of the face from 0 to 2", 0.0, 2.0)


def port(text: str) -> int:
    """A TCP port."""
    return _bounded(text, int, "a port number (1-65535)", 1, 65535)


def device(text: str) -> str:
    """A torch device this machine has ("auto": a GPU when there is one)."""
    from faceprompt.engine.runtime import resolve_device

    try:
        return str(resolve_device(text, "device"))
    except (RuntimeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("device: ")) from None


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model that answers in `predict` and `demo`: backbone, its weights, and the prompts (a trained run,
    the shipped tuned one by default, or none)."""
    from faceprompt.predict import default_backbone

    parser.add_argument("--backbone", default=None, help=f"backbone name (default: {default_backbone()})")
    parser.add_argument("--weights", default=None, help="'random', a weights file, or local-dir:FOLDER")
    parser.add_argument("--prompts", default=None, metavar="RUN_DIR",
                        help="a trained run, or its prompts.safetensors (default: the run tuned on the "
                             "embedded model that ships with it)")
    parser.add_argument("--zero-shot", action="store_true",
                        help="the bare pretrained backbone with its hand-written prompts, no tuned run")


def add_compile_arguments(parser: argparse.ArgumentParser, static: bool = False) -> None:
    """``--compile`` (torch.compile of the image path) and, for per-image latency, ``--static``."""
    parser.add_argument("--compile", action="store_true",
                        help="run the image path through torch.compile (the first call compiles, tens of seconds)")
    if static:
        parser.add_argument("--static", action="store_true",
                            help="GPU only: compiled with CUDA graphs over fixed batch shapes (batch-1 latency)")

