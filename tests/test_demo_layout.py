"""Labels beside their faces, never over another face or label; boxes whose landmarks make no face dropped."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from faceprompt.demo.layout import overlaps, place_labels
from faceprompt.demo.pipeline import FaceResult, FrameResult, draw
from faceprompt.demo.screening import NO_LANDMARKS, layout_problem
from faceprompt.predict import TaskPrediction
from faceprompt.tasks import TASKS


def crowded_boxes(rows=3, cols=5, side=70, gap=40, margin=30) -> list[tuple]:
    return [(margin + c * (side + gap), margin + r * (side + gap * 2), margin + c * (side + gap) + side,
             margin + r * (side + gap * 2) + side) for r in range(rows) for c in range(cols)]


def test_no_label_covers_a_face_or_another_label_on_a_crowded_frame():
    boxes = crowded_boxes()
    spots = place_labels(boxes, [(90, 44)] * len(boxes), 640, 480)
    placed = [s for s in spots if s is not None]
    assert len(placed) >= len(boxes) // 2  # most find room beside their face
    for i, spot in enumerate(placed):
        assert 0 <= spot[0] and 0 <= spot[1] and spot[2] <= 640 and spot[3] <= 480
        assert not any(overlaps(spot, box) for box in boxes)
        assert not any(overlaps(spot, other) for other in placed[i + 1:])


def _prediction(label_index=0) -> dict:
    return {name: TaskPrediction(task.classes[label_index], 0.9, {c: 0.9 if c == task.classes[label_index] else
                                                                 0.1 / (task.num_classes - 1) for c in task.classes})
            for name, task in TASKS.items()}


def test_a_label_with_no_room_is_listed_below_the_image():
    boxes = crowded_boxes(rows=4, cols=6, side=80, gap=25, margin=5)
    faces = [FaceResult(box, 0.9, _prediction()) for box in boxes]
    result = FrameResult(640, 480, faces, 1.0, 1.0, 0, [], 0, 0.0)
    image = Image.new("RGB", (640, 480), (90, 90, 90))
    drawn = draw(image, result)
    assert drawn.width == 640 and drawn.height > 480  # the strip with the labels that found no room
    assert np.asarray(drawn)[480:].mean() > 200  # white strip with dark text


@pytest.mark.parametrize("points, problem", [
    (None, NO_LANDMARKS),
    ([(40, 40), (60, 40), (50, 50), (42, 62), (58, 62)], ""),  # an upright face
    ([(40, 40), (60, 40), (50, 30), (42, 62), (58, 62)], "nose is not between"),  # nose above the eyes
    ([(20, 40), (95, 40), (55, 50), (42, 62), (58, 62)], "apart in a"),  # eyes a box apart
    ([(40, 40), (60, 40), (50, 45), (42, 44), (58, 44)], "the nose is not between"),  # mouth at the eyes
])
def test_landmarks_that_make_no_face_are_named(points, problem):
    box = (20, 20, 100, 100)
    found = layout_problem(points, box)
    assert (problem in found) if problem else found == ""


def test_a_tilted_face_is_still_a_face():
    upright = np.array([(40, 40), (60, 40), (50, 50), (42, 62), (58, 62)], dtype=float)
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = (upright - 50) @ rotation.T + 50
    assert layout_problem(tilted, (20, 20, 100, 100)) == ""
