"""Whether a detection is a face: its five landmarks (eyes, nose, mouth corners) in a face's layout.

A detector also boxes round badges, wheels and patterned cloth; the landmark search then finds no face in
the box, or points no face has (a nose above the eyes, eyes a whole box apart). Such a box is dropped, with
the reason, before anything is labelled. So is a small box lying within a larger face's box (an eye or a
cheek boxed as a face of its own): one face does not hold another.
"""
from __future__ import annotations

import numpy as np

NO_LANDMARKS = "no eyes, nose and mouth found in the box"


def layout_problem(points, box) -> str:
    """Why five landmarks (left eye, right eye, nose, left and right mouth corner, in image pixels, as MTCNN
    gives them) are not a face in ``box`` (x0, y0, x1, y1); "" when they are. Judged in the frame where the
    eyes are level, in eye distances, so a tilted or small face passes as well as an upright one."""
    if points is None:
        return NO_LANDMARKS
    p = np.asarray(points, dtype=float)
    if p.shape != (5, 2):
        return ""  # another landmark set: not judged here
    side = max(box[2] - box[0], box[3] - box[1], 1.0)
    left_eye, right_eye = p[0], p[1]
    eye = right_eye - left_eye
    distance = float(np.hypot(*eye))
    if not 0.12 * side <= distance <= 0.9 * side:
        return f"eyes {distance:.0f} px apart in a {side:.0f} px box"
    cos, sin = eye / distance
    level = (p - (left_eye + right_eye) / 2) @ np.array([[cos, sin], [-sin, cos]]).T / distance
    nose, mouth = level[2], (level[3] + level[4]) / 2
    if not 0 < nose[1] < mouth[1]:
        return "the nose is not between the eyes and the mouth"
    if not 0.4 <= mouth[1] <= 2.5:
        return f"the mouth is {mouth[1]:.1f} eye distances below the eyes"
    if abs(nose[0]) > 1.0:
        return "the nose is far beside the eyes"
    return ""


def inside_larger(box, larger_boxes, share: float = 0.7) -> int | None:
    """The index of the first of ``larger_boxes`` with a larger area that holds at least ``share`` of ``box``'s
    area; None when none does."""
    area = lambda b: max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)  # noqa: E731
    own = area(box)
    for i, other in enumerate(larger_boxes):
        inter = (max(min(box[2], other[2]) - max(box[0], other[0]), 0.0)
                 * max(min(box[3], other[3]) - max(box[1], other[1]), 0.0))
        if area(other) > own > 0 and inter >= share * own:
            return i
    return None
