"""Where each face's label goes: beside its box, never over another face or another label.

Candidates are tried in order (above the box, below it, right of it, left of it, each slid along the box's
side); the first that stays inside the image and clears every face box and every label already placed
wins. A label with no such place gets ``None``: the drawing then numbers that face and lists its label in a
strip below the image.
"""
from __future__ import annotations

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1


def overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _candidates(box: Rect, width: float, height: float) -> list[tuple[float, float]]:
    """Top-left corners of a ``width`` x ``height`` label around ``box``, the plainest first."""
    x0, y0, x1, y1 = box
    along_x = [x0, x1 - width, (x0 + x1 - width) / 2, x0 - width / 2, x1 - width / 2]
    along_y = [y0, y1 - height, (y0 + y1 - height) / 2]
    return ([(x, y0 - height) for x in along_x] + [(x, y1) for x in along_x]
            + [(x1, y) for y in along_y] + [(x0 - width, y) for y in along_y])


def place_labels(boxes: list[Rect], sizes: list[tuple[float, float]], image_width: float,
                 image_height: float) -> list[Rect | None]:
    """One rectangle per label (``sizes``: width, height), in ``boxes``' order, or None where none fits."""
    placed: list[Rect] = []
    out: list[Rect | None] = []
    for box, (width, height) in zip(boxes, sizes):
        spot = None
        for x, y in _candidates(box, width, height):
            rect = (x, y, x + width, y + height)
            inside = x >= 0 and y >= 0 and rect[2] <= image_width and rect[3] <= image_height
            if inside and not any(overlaps(rect, other) for other in [*boxes, *placed]):
                spot = rect
                break
        out.append(spot)
        if spot is not None:
            placed.append(spot)
    return out
