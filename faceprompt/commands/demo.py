"""`faceprompt demo INPUT --out DIR`: find every face in photos or videos and label each one.

    faceprompt demo photo.jpg --out annotated/ --json       # one image
    faceprompt demo photos/ --out annotated/                # every image in a folder
    faceprompt demo clip.mp4 --out annotated/ --json        # a video, frame by frame
    faceprompt demo --webcam 0 --out annotated/ --max-frames 300
    faceprompt demo --serve --port 8866                     # the interactive app as a Voila page

Writes ``DIR/<name>.jpg`` (or ``DIR/<name>.mp4``) with boxes and labels and, with ``--json``,
``DIR/<name>.json``: per face the box, the detection score and every task's probabilities.
Prints one line per frame with the time split into detection and classification.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

from faceprompt.commands.options import (add_compile_arguments, add_model_arguments, device, fraction, margin,
                                        non_negative_float, non_negative_int, port, positive_int)
from faceprompt.data.images import load_rgb
from faceprompt.io import write_json_atomic
from faceprompt.demo.media import (LatestFrame, VideoReadError, VideoWriter, folder_images, input_kind, iter_frames,
                                   open_video)
from faceprompt.align import CROP_MODES
from faceprompt.demo.pipeline import (DEFAULT_FACE_PHOTO_SIDE, DEFAULT_LANDMARKS, DEFAULT_MAX_FACES, DEFAULT_MIN_SIZE,
                                     DEFAULT_UNCERTAIN_BELOW, LANDMARK_SOURCES, FacePipeline, FrameResult, draw)
from faceprompt.predict import DEFAULT_CROP, compile_mode


# What the demo declines to label, or marks uncertain (see book/demo.md).
LABEL_RULES = (
    ("--min-score", None, float, "detections scored lower are not labelled; None: the detector's calibrated value"),
    ("--min-size", DEFAULT_MIN_SIZE, non_negative_float, "faces whose box is smaller (pixels) are not labelled"),
    ("--uncertain-below", DEFAULT_UNCERTAIN_BELOW, fraction,
     "a label less than this far from chance (0) towards certainty (1) is marked uncertain"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from faceprompt.detect import demo_detector

    parser.add_argument("input", nargs="?", help="an image, a folder of images, or a video file")
    parser.add_argument("--webcam", type=non_negative_int, default=None, metavar="INDEX",
                        help="read camera INDEX instead")
    parser.add_argument("--out", default=None, metavar="DIR", help="where annotated images/videos go")
    parser.add_argument("--json", action="store_true", help="also write DIR/<name>.json per input")
    add_model_arguments(parser)
    parser.add_argument("--detector", default=None, help=f"face detector (default: {demo_detector()})")
    parser.add_argument("--margin", type=margin, default=0.25,
                        help="crop margin per side, fraction of the face")
    parser.add_argument("--crop", choices=CROP_MODES, default=DEFAULT_CROP,
                        help=f"aligned: landmarks onto the face template; box: detection box + margin "
                             f"(default {DEFAULT_CROP})")
    parser.add_argument("--landmarks", choices=LANDMARK_SOURCES, default=DEFAULT_LANDMARKS,
                        help="aligned crops without detector landmarks: search (MTCNN around every face, batched, "
                             "small-face scales skipped), full-search (MTCNN's whole cascade face by face, as for "
                             "training data) or boxes (MTCNN's last stages on the boxes: fastest, can flip unsure "
                             f"labels) (default {DEFAULT_LANDMARKS})")
    parser.add_argument("--detect-max-side", type=positive_int, default=None, metavar="PIXELS",
                        help="shrink frames to this longer side for the detector (faster; small faces are missed)")
    parser.add_argument("--frame-batch", type=positive_int, default=8, metavar="N",
                        help="video: frames detected (where the detector batches) and classified together")
    add_compile_arguments(parser, static=True)
    for flag, default, kind, meaning in LABEL_RULES:
        parser.add_argument(flag, type=kind, default=default, help=f"{meaning} (default {default})")
    parser.add_argument("--face-photo-side", type=non_negative_int, default=DEFAULT_FACE_PHOTO_SIDE, metavar="PX",
                        help="an image (not a video) this small, longer side, with no face found is labelled whole "
                             f"(0: never; default {DEFAULT_FACE_PHOTO_SIDE})")
    parser.add_argument("--max-faces", type=positive_int, default=DEFAULT_MAX_FACES,
                        help="faces classified per frame")
    parser.add_argument("--max-frames", type=positive_int, default=None,
                        help="stop a video or webcam after N frames")
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is often faster on a busy machine)")
    parser.add_argument("--serve", action="store_true", help="serve the interactive app with Voila")
    parser.add_argument("--port", type=port, default=8866, help="port for --serve (on 127.0.0.1)")
    parser.add_argument("--runs", default="runs", metavar="DIR", help="--serve: folder of trained runs to offer")


def run(args: argparse.Namespace) -> int:
    if args.serve:
        from faceprompt.demo.app import serve

        return serve(port=args.port, backbone=args.backbone, runs_dir=args.runs, detector=args.detector)
    if (args.input is None) == (args.webcam is None):
        raise ValueError("give exactly one of INPUT (image, folder or video) or --webcam INDEX")
    if args.out is None:
        raise ValueError("--out DIR is required")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    kind = "webcam" if args.webcam is not None else input_kind(args.input)
    if kind != "webcam":
        refuse_replacing_input(Path(args.input), kind, out)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    # Open the input before loading a model: a bad file fails in a second, not after the model load.
    image, video = None, None
    if kind == "image":
        image = load_rgb(args.input)
    elif kind in ("video", "webcam"):
        video = open_video(args.webcam if kind == "webcam" else Path(args.input))
    else:
        folder_images(args.input)
    pipeline = FacePipeline.load(args.backbone, run_dir=args.prompts, detector=args.detector,
                                 weights=args.weights, device=args.device, margin=args.margin,
                                 max_faces=args.max_faces, crop=args.crop, min_score=args.min_score,
                                 min_size=args.min_size, uncertain_below=args.uncertain_below,
                                 landmarks=args.landmarks, detect_max_side=args.detect_max_side,
                                 face_photo_side=args.face_photo_side, zero_shot=args.zero_shot,
                                 compile=compile_mode(args.compile, args.static)).warm_up()
    out.mkdir(parents=True, exist_ok=True)
    model = pipeline.classifier.describe()
    print(f"backbone {model['backbone']}, {model['method']} (prompts: {model['prompts']}), "
          f"detector {pipeline.detector.name}", file=sys.stderr)
    if kind == "image":
        annotate_image(pipeline, Path(args.input), out, args.json, image=image)
        return 0
    if kind == "folder":
        return annotate_folder(pipeline, Path(args.input), out, args.json)
    name = f"webcam{args.webcam}" if kind == "webcam" else Path(args.input).stem
    frame_batch = 1 if kind == "webcam" else args.frame_batch  # a live camera labels each frame as it comes
    annotate_video(pipeline, video, name, out, args.json, args.max_frames, frame_batch, live=kind == "webcam")
    return 0


def refuse_replacing_input(source: Path, kind: str, out: Path) -> None:
    """Annotated files go to ``out/<name>.jpg|.mp4|.json``: refuse an ``out`` where one would replace an input."""
    if kind == "folder":
        clash = out.resolve() == source.resolve()
    else:
        suffixes = (".jpg", ".json") if kind == "image" else (".mp4", ".json")
        clash = any((out / f"{source.stem}{suffix}").resolve() == source.resolve() for suffix in suffixes)
    if clash:
        raise ValueError(f"--out {out}: the annotated output would replace the input {source}; "
                         f"choose another folder")


def annotate_image(pipeline: FacePipeline, path: Path, out: Path, write_json: bool,
                   name: str | None = None, image: Image.Image | None = None) -> FrameResult:
    """Annotate one image file into ``out``; raises ImageLoadError / FileNotFoundError on a bad file."""
    if image is None:
        image = load_rgb(path, max_pixels=pipeline.max_pixels)
    result = pipeline.annotate(image)
    print(f"{path.name}: {result.summary()}")
    for i, face in enumerate(result.faces, 1):
        x0, y0, x1, y1 = (round(v) for v in face.box)
        print(f"  face {i} at ({x0}, {y0}, {x1}, {y1}): {face.caption()}")
    name = name or path.stem
    timed_draw(image, result).save(out / f"{name}.jpg", quality=92)
    if write_json:
        record = {"input": str(path), "model": pipeline.classifier.describe(), **result.to_json()}
        write_json_atomic(out / f"{name}.json", record)
    return result


def annotate_folder(pipeline: FacePipeline, folder: Path, out: Path, write_json: bool) -> int:
    """Every image of ``folder``; a bad file is reported in one line and the rest go on (exit code 1)."""
    failed, used = 0, set()
    for path in folder_images(folder):
        # a.jpg and a.png both exist: keep both outputs apart.
        name = path.stem if path.stem not in used else f"{path.stem}_{path.suffix.lstrip('.').lower()}"
        used.add(name)
        try:
            annotate_image(pipeline, path, out, write_json, name)
        except (ValueError, OSError) as err:
            failed += 1
            print(f"{path.name}: error: {err}", file=sys.stderr)
    if failed:
        print(f"{failed} file(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


class FrameRate:
    """Frames labelled per second over the last ``window`` frames, and its drawing on a frame."""

    def __init__(self, window: int = 10):
        self.window, self.times = window, []

    def tick(self) -> None:
        self.times = (self.times + [time.perf_counter()])[-(self.window + 1):]

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)

    def draw(self, frame: Image.Image, dropped: int) -> Image.Image:
        from PIL import ImageDraw

        ImageDraw.Draw(frame).text((8, 8), f"{self.fps:.1f} fps, {dropped} dropped", fill=(255, 255, 0))
        return frame


def timed_draw(image, result: FrameResult) -> Image.Image:
    """``draw``, its time kept in ``result.draw_ms``."""
    start = time.perf_counter()
    canvas = draw(image, result)
    result.draw_ms = (time.perf_counter() - start) * 1000
    return canvas


def batches(frames, size: int):
    """Lists of up to ``size`` consecutive frames."""
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def annotate_video(pipeline: FacePipeline, video: tuple, name: str, out: Path, write_json: bool,
                   max_frames: int | None = None, frame_batch: int = 1, live: bool = False) -> list[FrameResult]:
    """Annotate an opened video or webcam (``open_video``'s result) into ``out/<name>.mp4``, ``frame_batch``
    frames at a time (``FacePipeline.annotate_frames``).

    ``live`` (a webcam): frames that arrive while one is being labelled are dropped, not queued
    (``media.LatestFrame``), one frame at a time; the frame rate reached is drawn on each frame and written
    to the JSON with the count of dropped frames. Ctrl-C stops a webcam cleanly: the frames so far are written.
    """
    capture, info = video
    results: list[FrameResult] = []
    target = out / f"{name}.mp4"
    frames = iter_frames(capture, info.source, max_frames)
    source = LatestFrame(frames) if live else None
    rate = FrameRate()
    with VideoWriter(target, info) as writer:
        try:
            for batch in batches(source if live else frames, 1 if live else frame_batch):
                for rgb, result in zip(batch, pipeline.annotate_frames(batch)):
                    drawn = timed_draw(rgb, result)
                    if live:
                        rate.tick()
                        drawn = rate.draw(drawn, source.dropped)
                    writer.write(drawn)
                    print(f"{name} frame {len(results)}: {result.summary()}")
                    results.append(result)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
        except VideoReadError:
            writer.close()
            target.unlink(missing_ok=True)  # no half-written empty video left behind
            raise
    if live:
        print(f"{name}: {rate.fps:.1f} frames a second labelled, {source.dropped} of {source.read} frames dropped "
              f"(they arrived while another was being labelled)")
    if results:
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        print(f"{name}: {len(results)} frames, mean detect {mean([r.detect_ms for r in results]):.1f} ms, "
              f"mean align {mean([r.align_ms for r in results]):.1f} ms, "
              f"mean classify {mean([r.classify_ms for r in results]):.1f} ms")
    if write_json:
        record = {"input": info.source, "model": pipeline.classifier.describe(), "fps": info.fps,
                  **({"labelled_fps": round(rate.fps, 2), "frames_read": source.read,
                      "frames_dropped": source.dropped} if live else {}),
                  "frames": [{"frame": i, **r.to_json()} for i, r in enumerate(results)]}
        write_json_atomic(out / f"{name}.json", record)
    return results
