"""One face crop for training, evaluation and the demo: 5 landmarks -> similarity transform -> template.

    crop = face_crop(image, detection, size=224, mode="aligned")   # detection: detect.Detection or None
    crop.image        # size x size PIL image
    crop.mode         # "aligned", or "box" / "full" when it fell back (crop.reason says why)

The published face datasets are landmark-aligned chips (UTKFace; FairFace used dlib's face chips with
padding 0.25): every face is rotated, scaled and shifted so its eyes, nose tip and mouth corners land on one
canonical template. ``TEMPLATE`` is that template measured on UTKFace itself: the median MTCNN landmarks of
299 of 300 random chips (x, y as fractions of the chip side), made left-right symmetric. A UTKFace chip
therefore passes through the aligned crop almost unchanged, and an in-the-wild face comes out framed like
the chips the model learnt from.

Landmarks come from facenet-pytorch's MTCNN (weights ship in the package; ``pip install --no-deps
facenet-pytorch``). ``benchmarks/bench_landmarks.py``: 200 seeded images per folder of the shared data,
one CPU thread, finding the face included; success = five points found::

    dataset              MTCNN              dlib 5-point (face-recognition-models)
    UTKFace chips        100.0%  55.5 ms    97.5%  17.8 ms
    facial_expressions   100.0%  35.4 ms    95.0%   9.8 ms
    FER+ Test (48 px)     89.5%  16.7 ms    67.0%   4.8 ms

MTCNN finds landmarks on more faces in every set, most of all on small, low-resolution faces, and its five
points are the ones a template needs (eye centres, nose tip, mouth corners), where dlib's 5-point model
gives eye corners and the nose base only. It costs two to four times dlib's time, tens of ms per face.
MediaPipe was not measured (not installed here). A face where landmarks fail falls back to the box crop,
and the result says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

CROP_MODES = ("aligned", "box")

# Left eye, right eye (as seen in the image), nose tip, left and right mouth corner; fractions of the side.
TEMPLATE = np.array([[0.3028, 0.2954], [0.6972, 0.2954], [0.5000, 0.5246], [0.3217, 0.6935],
                     [0.6783, 0.6935]])


@dataclass
class FaceCrop:
    """A crop and how it was made: ``mode`` is "aligned", "box" or "full" (no box: centred square);
    ``reason`` says why an aligned crop fell back; ``landmarks`` are in input-image pixels (or None)."""

    image: Image.Image
    mode: str
    reason: str = ""
    landmarks: np.ndarray | None = None

    @property
    def fell_back(self) -> bool:
        return bool(self.reason)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix of rotation, uniform scale and shift that maps ``src`` points closest onto ``dst``
    in least squares (Umeyama's closed form; the determinant check rules out a reflection)."""
    src, dst = np.asarray(src, float), np.asarray(dst, float)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching N x 2 point sets (N >= 2), got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    variance = (src_c ** 2).sum() / len(src)
    if variance <= 0:
        raise ValueError("source points all coincide: no transform is defined")
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (s * sign).sum() / variance
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (N x 2) mapped by a 2 x 3 affine ``matrix``."""
    points = np.asarray(points, float)
    return points @ matrix[:, :2].T + matrix[:, 2]


class Landmarker:
    """MTCNN's five points for the face in ``box`` (or the largest face of the image when ``box`` is None)."""

    # The region around a box is shrunk to at most this side first: MTCNN's cost grows with the pixels.
    max_side = 256
    border = 0.25  # fraction of the region's side added on each side before the search

    def __init__(self):
        try:
            from facenet_pytorch import MTCNN
        except ImportError:
            raise ImportError("aligned crops need facenet-pytorch: pip install --no-deps facenet-pytorch") from None
        self._model = MTCNN(keep_all=True, device="cpu", post_process=False, min_face_size=12)

    def locate(self, rgb: np.ndarray, box: tuple[float, float, float, float] | None = None) -> np.ndarray | None:
        """5 x 2 landmark pixels in ``rgb``, or None when MTCNN finds no face there."""
        return self.locate_many(rgb, [box])[0]

    def locate_many(self, rgb: np.ndarray, boxes: list[tuple[float, float, float, float] | None],
                    skip_small: bool = False) -> list[np.ndarray | None]:
        """``locate`` for each box; regions of equal picture size are searched in one batched MTCNN call.

        ``skip_small``: leave out the image pyramid's finest scales, those that look for faces under half the
        box's size in the searched picture. The remaining scales are exactly ``locate``'s (the first one is
        moved down the same geometric series), so the points are the same unless a much smaller face-like
        patch would have won; the search costs about half.
        """
        import torch

        regions = [self._region(rgb, box) for box in boxes]
        found: list[np.ndarray | None] = [None] * len(boxes)
        groups: dict[tuple, list[int]] = {}
        for i, (box, region) in enumerate(zip(boxes, regions)):
            # MTCNN's pyramid has no scale for a picture smaller than its smallest face (it fails on one).
            if region is not None and min(region[0].size) >= self._model.min_face_size:
                skipped = self._skipped_scales(box, region[1]) if skip_small and box is not None else 0
                groups.setdefault((region[0].size, skipped), []).append(i)
        model, smallest = self._model, self._model.min_face_size
        for (_, skipped), members in groups.items():
            model.min_face_size = smallest / model.factor ** skipped
            try:
                with torch.inference_mode():
                    batch = [regions[i][0] for i in members]
                    boxes_found, _, points = model.detect(batch if len(batch) > 1 else batch[0], landmarks=True)
            finally:
                model.min_face_size = smallest
            if len(members) == 1:
                boxes_found, points = [boxes_found], [points]
            for i, candidates, marks in zip(members, boxes_found, points):
                if candidates is None:
                    continue
                candidates = np.asarray(candidates, float)
                best = int(np.argmax((candidates[:, 2] - candidates[:, 0]) * (candidates[:, 3] - candidates[:, 1])))
                _, factor, offset = regions[i]
                found[i] = np.asarray(marks[best], float) / factor + offset
        return found

    def _skipped_scales(self, box: tuple[float, float, float, float], factor: float) -> int:
        """Pyramid scales that only find faces under half ``box``'s side once shrunk by ``factor``."""
        half = 0.5 * factor * max(box[2] - box[0], box[3] - box[1])
        ratio = half / self._model.min_face_size
        return max(0, int(np.floor(np.log(ratio) / np.log(1 / self._model.factor)))) if ratio > 1 else 0

    def from_boxes(self, rgb: np.ndarray, boxes: list[tuple[float, float, float, float]],
                   refine: tuple[str, ...] = ("rnet",), min_score: float = 0.7) -> list[np.ndarray | None]:
        """5 x 2 landmark pixels per face box, from MTCNN's last stages run on the boxes themselves.

        The boxes (a detector's) take the place of MTCNN's own first-stage proposals: each is squared, moved
        by the ``refine`` networks' box regression in turn (``"rnet"``, ``"onet"``), and the output network
        reads the points off the result. All faces share one batch per network: a few milliseconds a frame,
        where searching each face's surroundings with the whole cascade costs tens of milliseconds a face.
        A box the output network scores below ``min_score`` as a face (MTCNN's own last threshold) gets None.
        On the demo's photos the points land within about 3 px of ``locate``'s on 130 px faces.
        """
        import torch
        from facenet_pytorch.models.utils.detect_face import bbreg, rerec

        if not boxes:
            return []
        model = self._model
        # Grey beyond the frame, as ``locate``'s border: a box overhanging a tight chip is not squeezed.
        border = int(max(max(b[2] - b[0], b[3] - b[1]) for b in boxes))
        rgb = np.pad(np.asarray(rgb), ((border, border), (border, border), (0, 0)), constant_values=128)
        with torch.inference_mode():
            image = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
            square = rerec(torch.tensor([[b[0] + border, b[1] + border, b[2] + border, b[3] + border, 1.0]
                                         for b in boxes], dtype=torch.float32))
            for stage in refine:
                net, side = (model.rnet, 24) if stage == "rnet" else (model.onet, 48)
                square = rerec(bbreg(square, net(_patches(image, square, side))[0]))
            _, points, scores = model.onet(_patches(image, square, 48))
        w = square[:, 2] - square[:, 0] + 1
        h = square[:, 3] - square[:, 1] + 1
        xs = w[:, None] * points[:, :5] + square[:, :1] - 1 - border
        ys = h[:, None] * points[:, 5:] + square[:, 1:2] - 1 - border
        return [np.stack([x, y], axis=1).astype(float) if score >= min_score else None
                for x, y, score in zip(xs.numpy(), ys.numpy(), scores[:, 1].tolist())]

    def _region(self, rgb: np.ndarray, box) -> tuple[Image.Image, float, np.ndarray] | None:
        """(picture searched, its scale, its top-left corner in ``rgb``) around ``box``, or None if empty."""
        height, width = rgb.shape[:2]
        left, top = 0, 0
        region = rgb
        if box is not None:  # look only around the given face, so the landmarks belong to it
            x0, y0, x1, y1 = box
            pad = 0.5 * max(x1 - x0, y1 - y0)
            left, top = int(max(x0 - pad, 0)), int(max(y0 - pad, 0))
            region = rgb[top:int(min(y1 + pad, height)), left:int(min(x1 + pad, width))]
        if region.size == 0:
            return None
        # A grey border: on a tight chip the face overhangs the frame and MTCNN's points drift by tens of pixels.
        border = int(self.border * max(region.shape[:2]))
        region = np.pad(region, ((border, border), (border, border), (0, 0)), constant_values=128)
        left, top = left - border, top - border
        factor = min(1.0, self.max_side / max(region.shape[:2]))
        picture = Image.fromarray(np.ascontiguousarray(region))
        if factor < 1:
            picture = picture.resize((max(round(picture.width * factor), 1), max(round(picture.height * factor), 1)),
                                     Image.BILINEAR)
        return picture, factor, np.array([left, top], float)


def _patches(image, boxes, side: int):
    """MTCNN's network input: each box of ``image`` [1, 3, H, W] (clipped to it) resized to side x side."""
    import torch
    from facenet_pytorch.models.utils.detect_face import imresample, pad

    height, width = image.shape[2:]
    y, ey, x, ex = pad(boxes, width, height)
    crops = [imresample(image[:, :, y[k] - 1:ey[k], x[k] - 1:ex[k]], (side, side)) for k in range(len(y))]
    return (torch.cat(crops) - 127.5) * 0.0078125


@lru_cache(maxsize=1)
def get_landmarker() -> Landmarker:
    """One landmark model per process (each worker of ``prepare`` builds its own)."""
    return Landmarker()


def align(image: Image.Image, landmarks: np.ndarray, size: int) -> Image.Image:
    """``image`` warped so ``landmarks`` land on ``TEMPLATE`` in a ``size`` x ``size`` crop."""
    import cv2

    matrix = similarity_transform(landmarks, TEMPLATE * size)
    # Edge pixels, as in the box crop: black corners would be a cue a model could learn.
    warped = cv2.warpAffine(np.asarray(image), matrix, (size, size), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(warped)


def face_crop(image: Image.Image, detection=None, size: int = 224, mode: str = "aligned",
              margin: float = 0.25, landmarker: Landmarker | None = None) -> FaceCrop:
    """The crop every path uses: training data (``prepare``), evaluation, ``predict`` and the demo.

    image:      RGB PIL image (a whole photo, or a chip a dataset ships already cropped).
    detection:  a ``detect.Detection`` (its ``landmarks`` are used when the detector gave them), or None
                for a single-face image: the landmarks are then searched in the whole image.
    size:       side of the square output in pixels (the backbone's input size).
    mode:       "aligned" (landmarks -> ``TEMPLATE``) or "box" (the detection box plus ``margin`` on each
                side, a fraction of the box's larger side; no box: the centred square).
    Where landmarks fail (or facenet-pytorch is missing) an aligned crop falls back to the box crop and
    ``FaceCrop.reason`` says why, so callers can count it.
    """
    from faceprompt.detect import crop_face

    if mode not in CROP_MODES:
        raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
    box = None if detection is None else detection.box
    fallback = "box" if box is not None else "full"
    reason = ""
    if mode == "aligned":
        points = getattr(detection, "landmarks", None)
        if points is None:
            try:
                points = (landmarker or get_landmarker()).locate(np.asarray(image), box)
            except ImportError as err:
                points, reason = None, str(err)
        if points is not None:
            return FaceCrop(align(image, points, size), "aligned", landmarks=np.asarray(points, float))
        reason = reason or "no landmarks found"
    return FaceCrop(crop_face(image, box, margin, size), fallback, reason)
