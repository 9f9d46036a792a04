"""Detect every face in a frame, classify all of them in one batched forward, draw the labels.

    pipeline = FacePipeline.load()                 # default backbone and detector, zero-shot prompts
    result = pipeline.annotate(image)              # PIL image or H x W x 3 uint8 RGB array
    draw(image, result).save("annotated.jpg")
    print(result.faces[0].predictions["age"].label, result.detect_ms, result.classify_ms)

The steps are the ones every face-attribute demo takes (detect -> crop -> classify -> draw box + label +
confidence); the crop is the training crop (``align.face_crop``), so the classifier sees faces framed
the way it was trained on.

Honesty rules: a detection scored below ``min_score`` (calibrated per detector on the shared photos, see
``benchmarks/bench_in_the_wild.py``) or smaller than ``min_size`` pixels is not labelled; each one
is listed under ``dropped`` with the reason. A task whose label's certainty (its top probability rescaled so
that chance is 0 and certainty 1: ``TaskPrediction.certainty``) is below ``uncertain_below`` is marked
uncertain (a ``?`` in the drawing, ``"uncertain": true`` in the JSON).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from faceprompt.backbones import Backbone
from faceprompt.data.images import DEFAULT_MAX_PIXELS, ImageLoadError, to_rgb
from faceprompt.align import face_crop
from faceprompt.detect import Detection, Detector, demo_detector, get_detector
from faceprompt.demo.layout import place_labels
from faceprompt.demo.screening import inside_larger, layout_problem
from faceprompt.predict import DEFAULT_CROP, FaceClassifier, TaskPrediction, as_json

# Faces classified per frame at most: a crowd photo stays one bounded batch (the best-scored faces win).
DEFAULT_MAX_FACES = 32
NO_FACE_MESSAGE = "no face found"
# Lowest detector score labelled: about the 1% quantile of the largest detection's score on held-out
# single-face photos (benchmarks/bench_in_the_wild.py; dlib: UTKFace 0.045, facial_expressions 0.078), so
# 99% of true faces stay. BlazeFace keeps MediaPipe's own 0.5, under its 1% quantiles (0.516-0.574); its
# second boxes in those photos scored 0.50-0.58 too (benchmarks/results/cpu-2026-12-07/in_the_wild_blazeface.json),
# so its face-mesh check (``detect.BlazeFaceDetector``), not the score, drops them. Other detectors keep
# their own threshold.
MIN_SCORES = {"dlib": 0.05, "blazeface": 0.5}
# Faces smaller than this (box side, pixels) carry too little detail to label.
DEFAULT_MIN_SIZE = 20
# A task whose label is less than this far from chance towards certainty (``TaskPrediction.certainty``) is
# shown as uncertain: a top probability under 75% for gender's two classes, about 57% for emotion's seven.
DEFAULT_UNCERTAIN_BELOW = 0.5
# A photo no larger than this (longer side, pixels) in which no face is found is taken as one face: a face
# crop such as a profile picture or a dataset chip, where the face fills the frame and detectors miss it.
DEFAULT_FACE_PHOTO_SIDE = 224  # a CLIP input side: a photo no larger is at most one face's worth of pixels
# Where an aligned crop's landmarks come from when the detector gives none. "full-search": MTCNN's whole cascade
# around each face, one face at a time (what ``align.face_crop`` does for training data). "search": the same
# search for all faces of a frame, batched, with the pyramid scales that look for faces under half the box left
# out (``Landmarker.locate_many(skip_small=True)``): the same points on every face measured, in about half the
# time. "boxes": MTCNN's last two networks on the detector's boxes, one batch (a few ms a frame; points within
# ~4% of the face of the searched ones, which can flip a label the model is unsure of). A face without points
# falls back to the full search. benchmarks/bench_demo_cpu.py compares the labels.
LANDMARK_SOURCES = ("search", "full-search", "boxes")
DEFAULT_LANDMARKS = "search"


@dataclass
class FaceResult:
    """One detected face: ``box`` (x0, y0, x1, y1) in input pixels, detector ``score``, per-task predictions."""

    box: tuple[float, float, float, float]
    score: float
    predictions: dict[str, TaskPrediction]
    uncertain: list[str] = field(default_factory=list)  # tasks whose certainty is below the threshold
    crop: str = "box"  # how the classifier's crop was made: "aligned", or "box" (also after a fallback)
    landmarks: tuple | None = None  # the five points the aligned crop used (thumbnails reuse them)
    whole_image: bool = False  # no face was found in this face-sized photo: the photo is the face

    def caption(self) -> str:
        """Short label drawn above the box, e.g. ``female 91% | 20-29 48% ? | happiness 77%`` (? = uncertain)."""
        return " | ".join(f"{p.label} {p.confidence:.0%}" + (" ?" if task in self.uncertain else "")
                          for task, p in self.predictions.items())

    def to_json(self) -> dict:
        predictions = as_json(self.predictions)
        for task, entry in predictions.items():
            entry["uncertain"] = task in self.uncertain
        return {"box": [round(v, 1) for v in self.box], "score": round(self.score, 4), "crop": self.crop,
                "whole_image": self.whole_image, "uncertain": bool(self.uncertain), "predictions": predictions}


@dataclass
class FrameResult:
    """All faces of one frame, best detection first, and where the time went."""

    width: int
    height: int
    faces: list[FaceResult] = field(default_factory=list)
    detect_ms: float = 0.0
    classify_ms: float = 0.0  # the classifier's batched forward (preprocessing included)
    skipped_faces: int = 0  # detections beyond ``max_faces``, left unclassified
    dropped: list[dict] = field(default_factory=list)  # detections not labelled: box, score, reason
    crop_fallbacks: int = 0  # faces meant to be aligned that got the box crop (no landmarks found)
    align_ms: float = 0.0  # landmarks and crops
    draw_ms: float | None = None  # set by whoever draws the result (``timed_draw``)

    @property
    def total_ms(self) -> float:
        """Detection, landmarks and crops, and classification (drawing is the caller's)."""
        return self.detect_ms + self.align_ms + self.classify_ms

    @property
    def stages_ms(self) -> dict[str, float | None]:
        return {"detect": self.detect_ms, "align": self.align_ms, "classify": self.classify_ms,
                "draw": self.draw_ms}

    def summary(self) -> str:
        """One line for logs: face count (or 'no face found') and the time split."""
        if self.faces:
            found = f"{len(self.faces)} face{'s' if len(self.faces) != 1 else ''}"
            if self.skipped_faces:
                found += f" (+{self.skipped_faces} not classified: over the per-frame limit)"
            if self.dropped:
                found += f" (+{len(self.dropped)} dropped: low score, too small or not a face)"
            if self.faces[0].whole_image:
                found += " (the whole photo: none found in this face-sized photo)"
        else:
            found = NO_FACE_MESSAGE
        return (f"{found} | detect {self.detect_ms:.1f} ms | align {self.align_ms:.1f} ms "
                f"| classify {self.classify_ms:.1f} ms | total {self.total_ms:.1f} ms")

    def to_json(self) -> dict:
        stages = {k: None if v is None else round(v, 2) for k, v in self.stages_ms.items()}
        return {"width": self.width, "height": self.height, "detect_ms": round(self.detect_ms, 2),
                "classify_ms": round(self.classify_ms, 2), "stages_ms": stages, "skipped_faces": self.skipped_faces,
                "crop_fallbacks": self.crop_fallbacks, "dropped": self.dropped,
                "faces": [f.to_json() for f in self.faces]}


def as_rgb_array(image: Image.Image | np.ndarray, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Any PIL image (grayscale, RGBA, palette, 16-bit) or uint8 array as ``H x W x 3`` uint8 RGB."""
    if isinstance(image, Image.Image):
        width, height = image.size
        _check_pixels(width, height, max_pixels)
        return np.asarray(to_rgb(image), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"image array must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        return as_rgb_array(Image.fromarray(arr, "RGBA"), max_pixels)  # flatten on white like load_rgb
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image array must be H x W, H x W x 3 or H x W x 4, got shape {arr.shape}")
    _check_pixels(arr.shape[1], arr.shape[0], max_pixels)
    return np.ascontiguousarray(arr)


def _check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"empty image ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(f"{width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,}")


class FacePipeline:
    """detector -> drop weak or tiny detections -> face crops -> one batched classifier forward per frame.

    ``min_score`` None takes the detector's calibrated ``MIN_SCORES`` entry; ``crop`` is "box" or "aligned"
    (see ``align.face_crop``); ``landmarks``: where aligned crops' points come from (``LANDMARK_SOURCES``);
    ``detect_max_side``: frames larger than this (pixels, longer side) are shrunk for the detector, its boxes
    mapped back (faster; faces under the detector's minimum at that scale are missed); ``face_photo_side``: a
    photo whose longer side is at most this and in which no face is labelled is classified whole, cropped as
    ``prepare`` crops an image it is not asked to detect in (0: never)."""

    def __init__(self, detector: Detector, classifier: FaceClassifier, margin: float = 0.25,
                 max_faces: int = DEFAULT_MAX_FACES, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 crop: str = DEFAULT_CROP, min_score: float | None = None, min_size: float = DEFAULT_MIN_SIZE,
                 uncertain_below: float = DEFAULT_UNCERTAIN_BELOW, landmarks: str = DEFAULT_LANDMARKS,
                 detect_max_side: int | None = None, face_photo_side: int = DEFAULT_FACE_PHOTO_SIDE):
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if landmarks not in LANDMARK_SOURCES:
            raise ValueError(f"landmarks must be one of {LANDMARK_SOURCES}, got {landmarks!r}")
        if detect_max_side is not None and detect_max_side < 32:
            raise ValueError(f"detect_max_side must be 32 pixels or more, got {detect_max_side}")
        if face_photo_side < 0:
            raise ValueError(f"face_photo_side must be 0 (off) or more pixels, got {face_photo_side}")
        self.landmarks, self.detect_max_side, self.face_photo_side = landmarks, detect_max_side, face_photo_side
        self.detector, self.classifier = detector, classifier
        self.margin, self.max_faces, self.max_pixels = margin, max_faces, max_pixels
        self.crop_mode, self.min_size, self.uncertain_below = crop, min_size, uncertain_below
        self.min_score = MIN_SCORES.get(getattr(detector, "name", ""), float("-inf")) if min_score is None \
            else min_score

    @classmethod
    def load(cls, backbone: str | Backbone | None = None, run_dir: str | os.PathLike | None = None,
             detector: str | None = None, weights: str | None = None, device: str = "cpu",
             compile: str = "off", zero_shot: bool = False, **options) -> "FacePipeline":
        """A pipeline from names: backbone (name or loaded; default: the embedded face model), trained run
        (default: the run tuned on the embedded model that ships with it; ``zero_shot``: none), detector
        (default: ``detect.demo_detector()``); ``compile``: the classifier's ``torch.compile`` mode."""
        classifier = FaceClassifier.load(backbone, run_dir=run_dir, weights=weights, device=device, compile=compile,
                                         zero_shot=zero_shot)
        return cls(get_detector(detector or demo_detector()), classifier, **options)

    @property
    def crop_size(self) -> int:
        # Crop straight to the backbone's input size: no second resize inside preprocess.
        return self.classifier.backbone.image_size

    def warm_up(self) -> "FacePipeline":
        """One throwaway forward: torch's first call is ~2 s of lazy set-up that no frame should pay."""
        self.classifier.predict([Image.new("RGB", (self.crop_size, self.crop_size), (128, 128, 128))])
        return self

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self.detect_frames([rgb])[0]

    def detect_frames(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        """Detections per frame, frames shrunk to ``detect_max_side`` first; several frames of one size go to
        the detector as one batch where it takes batches (``detect_batch``: MTCNN)."""
        shrunk = [shrink(rgb, self.detect_max_side) for rgb in frames]
        batch = getattr(self.detector, "detect_batch", None)
        if batch is not None and len(frames) > 1:
            found = batch([small for small, _ in shrunk])
        else:
            found = [self.detector.detect(small) for small, _ in shrunk]
        return [[scaled(d, factor) for d in detections] for detections, (_, factor) in zip(found, shrunk)]

    def annotate(self, image: Image.Image | np.ndarray) -> FrameResult:
        """Find and label every face; an image without faces gives a result with ``faces == []``."""
        return self.annotate_frames([image], photos=True)[0]

    def annotate_frames(self, images: list[Image.Image | np.ndarray], photos: bool = False) -> list[FrameResult]:
        """``annotate`` for several frames (a video's): detection batched where the detector allows, and all
        faces of all frames classified in one forward. Each frame is charged an equal share of the times.
        ``photos``: the images are photos, not a video's frames (only a photo is taken whole as a face crop)."""
        rgbs = [as_rgb_array(image, self.max_pixels) for image in images]
        start = time.perf_counter()
        found = self.detect_frames(rgbs)
        detect_ms = (time.perf_counter() - start) * 1000 / len(rgbs)
        screened = [self.screen(detections) for detections in found]
        kept = [detections[: self.max_faces] for detections, _ in screened]  # detectors return best first
        whole = [photos and not faces and 0 < max(rgb.shape[:2]) <= self.face_photo_side
                 for rgb, faces in zip(rgbs, kept)]
        kept = [[whole_image(rgb)] if w else faces for rgb, faces, w in zip(rgbs, kept, whole)]
        over_limit = [max(len(detections) - len(faces), 0) for (detections, _), faces in zip(screened, kept)]
        start = time.perf_counter()
        crops = [self.frame_crops(Image.fromarray(rgb), faces, w) for rgb, faces, w in zip(rgbs, kept, whole)]
        align_ms = (time.perf_counter() - start) * 1000 / len(rgbs)
        for i, w in enumerate(whole):  # a box whose landmarks make no face is dropped, with the reason
            if not w and self.crop_mode == "aligned":
                kept[i], crops[i] = self.drop_non_faces(rgbs[i], kept[i], crops[i], screened[i][1])
        start = time.perf_counter()
        predictions = self.classifier.predict([c.image for frame in crops for c in frame])
        classify_ms = (time.perf_counter() - start) * 1000 / len(rgbs)
        results, used = [], 0
        for rgb, (_, dropped), faces, frame_crops, w, skipped in zip(rgbs, screened, kept, crops, whole, over_limit):
            labels, used = predictions[used:used + len(faces)], used + len(faces)
            results.append(FrameResult(
                rgb.shape[1], rgb.shape[0],
                [FaceResult(d.box, d.score, p, self.uncertain_tasks(p), c.mode, _points(c, d), w)
                 for d, p, c in zip(faces, labels, frame_crops)],
                detect_ms, classify_ms if faces else 0.0, skipped, dropped,
                sum(c.fell_back for c in frame_crops), align_ms if faces else 0.0))
        return results

    def screen(self, detections: list[Detection]) -> tuple[list[Detection], list[dict]]:
        """The detections to label, and the dropped ones with why (score below ``min_score``, a box side
        below ``min_size`` pixels, the detector's own check found no face, or it lies within a larger kept box)."""
        kept, dropped = [], []
        by_area = sorted(range(len(detections)), key=lambda i: -detections[i].area)  # a box inside one: seen after
        for i in by_area:
            d = detections[i]
            side = min(d.width, d.height)
            inside = inside_larger(d.box, [detections[k].box for k, _ in kept]) is not None
            reason = (f"score {d.score:.3f} < {self.min_score:g}" if d.score < self.min_score else
                      f"size {side:.0f} px < {self.min_size:g} px" if side < self.min_size else
                      f"not a face: {d.rejected}" if d.rejected else
                      "not a face: inside a larger face's box" if inside else "")
            if reason:
                dropped.append((i, {"box": [round(v, 1) for v in d.box], "score": round(d.score, 4),
                                    "reason": reason}))
            else:
                kept.append((i, d))
        # the detector's order (best first) again
        return [d for _, d in sorted(kept, key=lambda x: x[0])], [e for _, e in sorted(dropped, key=lambda x: x[0])]

    def drop_non_faces(self, rgb: np.ndarray, faces: list[Detection], crops: list,
                       dropped: list[dict]) -> tuple[list, list]:
        """The faces whose landmarks are in a face's layout (``screening.layout_problem``) and their crops;
        the others join ``dropped`` with the reason. A detector with a second look of its own (``confirms``)
        keeps a box it is sure of: a face turned to profile has its eyes close together, no frontal layout."""
        keep = []
        confirms = getattr(self.detector, "confirms", None)
        for i, (face, crop) in enumerate(zip(faces, crops)):
            problem = layout_problem(None if crop.fell_back else crop.landmarks, face.box)
            if problem and confirms is not None and confirms(rgb, face):
                problem = ""
            if problem:
                dropped.append({"box": [round(v, 1) for v in face.box], "score": round(face.score, 4),
                                "reason": f"not a face: {problem}"})
            else:
                keep.append(i)
        return [faces[i] for i in keep], [crops[i] for i in keep]

    def uncertain_tasks(self, prediction: dict[str, TaskPrediction]) -> list[str]:
        return [task for task, p in prediction.items() if p.certainty < self.uncertain_below]

    def face_crops(self, frame: Image.Image, detections: list[Detection]):
        """``align.FaceCrop`` per detection, made the way ``prepare`` makes training crops (the landmarks of
        faces of the frame found together first, unless ``landmarks="full-search"``)."""
        if self.crop_mode == "aligned" and self.landmarks != "full-search":
            detections = with_landmarks(np.asarray(frame), detections, self.landmarks)
        return [face_crop(frame, d, self.crop_size, self.crop_mode, self.margin) for d in detections]

    def frame_crops(self, frame: Image.Image, faces: list[Detection], whole: bool = False):
        """``face_crops``, or for a photo taken whole the crop ``prepare`` makes without a detection."""
        if whole:
            return [face_crop(frame, None, self.crop_size, self.crop_mode, self.margin)]
        return self.face_crops(frame, faces)

    def classify(self, rgb: np.ndarray, detections: list[Detection]) -> list[dict[str, TaskPrediction]]:
        """All faces of a frame in one batched forward (every task, and every VPT-TS prompt set, at once)."""
        if not detections:
            return []
        return self.classifier.predict([c.image for c in self.face_crops(Image.fromarray(rgb), detections)])

    def crops(self, image: Image.Image | np.ndarray, result: FrameResult) -> list[Image.Image]:
        """The face crops of ``result`` as the classifier saw them (for thumbnails)."""
        frame = Image.fromarray(as_rgb_array(image, self.max_pixels))
        faces = [Detection(f.box, f.score, f.landmarks) for f in result.faces]
        return [c.image for c in self.frame_crops(frame, faces, any(f.whole_image for f in result.faces))]


def whole_image(rgb: np.ndarray) -> Detection:
    """The whole photo as one face's box (score 0: nothing detected it)."""
    return Detection((0.0, 0.0, float(rgb.shape[1]), float(rgb.shape[0])), 0.0)


def shrink(rgb: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``rgb`` with its longer side at most ``max_side`` (area-averaged), and the factor applied (<= 1)."""
    factor = 1.0 if max_side is None else min(1.0, max_side / max(rgb.shape[:2]))
    if factor == 1.0:
        return rgb, 1.0
    import cv2

    size = (max(round(rgb.shape[1] * factor), 1), max(round(rgb.shape[0] * factor), 1))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), factor


def scaled(detection: Detection, factor: float) -> Detection:
    """A detection on a frame shrunk by ``factor``, in the full frame's pixels."""
    if factor == 1.0:
        return detection
    points = None if detection.landmarks is None else tuple((x / factor, y / factor) for x, y in detection.landmarks)
    return replace(detection, box=tuple(v / factor for v in detection.box), landmarks=points)


def with_landmarks(rgb: np.ndarray, detections: list[Detection], source: str = DEFAULT_LANDMARKS) -> list[Detection]:
    """Detections without landmarks get MTCNN's points, all faces of the frame together (``LANDMARK_SOURCES``);
    those left without keep None and get ``face_crop``'s full search. Without facenet-pytorch: unchanged."""
    from faceprompt.align import get_landmarker

    missing = [i for i, d in enumerate(detections) if d.landmarks is None]
    if not missing:
        return detections
    boxes = [detections[i].box for i in missing]
    try:
        landmarker = get_landmarker()
    except ImportError:
        return detections
    points = landmarker.from_boxes(rgb, boxes) if source == "boxes" else landmarker.locate_many(rgb, boxes, True)
    out = list(detections)
    for i, p in zip(missing, points):
        if p is not None:
            out[i] = replace(out[i], landmarks=tuple((float(x), float(y)) for x, y in p))
    return out


def _points(crop, detection: Detection) -> tuple | None:
    if crop.landmarks is None:
        return detection.landmarks
    return tuple((float(x), float(y)) for x, y in crop.landmarks)


# --- drawing ----------------------------------------------------------------------------------------

# Distinct box colours, cycled over faces (Okabe-Ito: readable for colour-blind viewers).
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167)]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable built-in font (Pillow >= 10.1)
    except TypeError:
        return ImageFont.load_default()


def draw(image: Image.Image | np.ndarray, result: FrameResult, max_pixels: int | None = None) -> Image.Image:
    """A copy of ``image`` with each face's box, its number and its labels with confidences. A label sits beside
    its box and never over another face or label (``layout.place_labels``); one that fits nowhere is listed,
    with the face's number, in a strip added below the image."""
    canvas = Image.fromarray(as_rgb_array(image, max_pixels))
    pen = ImageDraw.Draw(canvas)
    scale = max(canvas.size) / 640
    line = max(2, round(2 * scale))
    font = _font(max(11, round(13 * scale)))
    texts, sizes = [], []
    for i, face in enumerate(result.faces):
        # One task per line keeps the label about as wide as the face, so it finds room beside it.
        heading = f"{i + 1} (uncertain): " if face.uncertain else f"{i + 1}: "
        texts.append(heading + face.caption().replace(" | ", "\n"))
        left, top, right, bottom = pen.multiline_textbbox((0, 0), texts[-1], font=font, spacing=line)
        sizes.append((right - left + 2 * line, bottom - top + 2 * line))
    spots = place_labels([tuple(f.box) for f in result.faces], sizes, canvas.width, canvas.height)
    for i, face in enumerate(result.faces):
        pen.rectangle(tuple(face.box), outline=PALETTE[i % len(PALETTE)], width=line)
    unplaced = []
    for i, (text, spot) in enumerate(zip(texts, spots)):
        colour = PALETTE[i % len(PALETTE)]
        if spot is None:
            unplaced.append((i, text))
            x0, y0 = result.faces[i].box[:2]
            pen.text((max(x0, 0) + line, max(y0, 0) + line), str(i + 1), fill=colour, font=font)
            continue
        left, top = pen.multiline_textbbox((0, 0), text, font=font, spacing=line)[:2]
        pen.rectangle(spot, fill=colour)
        pen.multiline_text((spot[0] + line - left, spot[1] + line - top), text, fill=(0, 0, 0), font=font,
                           spacing=line)
    return with_legend(canvas, unplaced, font, line) if unplaced else canvas


def with_legend(canvas: Image.Image, entries: list[tuple[int, str]], font, line: int) -> Image.Image:
    """``canvas`` with a strip below listing the labels that found no room beside their faces."""
    text = "\n".join(entry.replace("\n", " | ") for _, entry in entries)
    probe = ImageDraw.Draw(canvas)
    left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=font, spacing=line)
    strip = bottom - top + 4 * line
    out = Image.new("RGB", (max(canvas.width, right - left + 4 * line), canvas.height + strip), (255, 255, 255))
    out.paste(canvas, (0, 0))
    ImageDraw.Draw(out).multiline_text((2 * line - left, canvas.height + 2 * line - top), text, fill=(0, 0, 0),
                                       font=font, spacing=line)
    return out
