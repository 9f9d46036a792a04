"""Photos from outside every dataset, for the demo chapter: a portrait that ships with matplotlib and the
conditions real photos bring (colour cast, dim light, black and white, a tilted head, several faces at
several sizes), each annotated by the demo's own path with the aligned crops it classified beside it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

BACKGROUND = (200, 200, 200)
# What the portrait shows: a woman born in 1906, photographed in 1984 at 77.
PORTRAIT_TRUTH = {"gender": "female", "age": "70+"}


def portrait_path() -> Path | None:
    """matplotlib's sample portrait (Grace Hopper, 1984), or None where this matplotlib lacks it."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return path if path.is_file() else None


def warm_cast(photo: Image.Image, strength: float = 0.25) -> Image.Image:
    """Tungsten-like white balance: red up, blue down by ``strength``."""
    gains = np.array([1 + strength, 1.0, 1 - strength])
    return Image.fromarray(np.clip(np.asarray(photo, dtype=np.float32) * gains, 0, 255).astype(np.uint8))


def dim(photo: Image.Image, factor: float = 0.35) -> Image.Image:
    return ImageEnhance.Brightness(photo).enhance(factor)


def tilted(photo: Image.Image, degrees: float = 25) -> Image.Image:
    return photo.rotate(degrees, resample=Image.BILINEAR, fillcolor=BACKGROUND)


def group(photo: Image.Image, scales=(1.0, 0.7, 0.45)) -> Image.Image:
    """The photo side by side at several sizes, bottoms aligned, as people stand at several distances."""
    copies = [photo.resize((round(photo.width * s), round(photo.height * s))) for s in scales]
    canvas = Image.new("RGB", (sum(c.width for c in copies), photo.height), BACKGROUND)
    x = 0
    for copy in copies:
        canvas.paste(copy, (x, photo.height - copy.height))
        x += copy.width
    return canvas


def condition_photos(max_side: int = 480) -> dict[str, Image.Image]:
    """Named photos: the portrait as shipped and under each condition; empty without the portrait."""
    path = portrait_path()
    if path is None:
        return {}
    photo = Image.open(path).convert("RGB")
    photo.thumbnail((max_side, max_side))
    return {"as shipped": photo, "warm colour cast": warm_cast(photo), "dim light": dim(photo),
            "black and white": ImageOps.grayscale(photo).convert("RGB"), "tilted 25°": tilted(photo),
            "three sizes": group(photo)}


def annotated_with_crops(pipeline, photos: dict[str, Image.Image], cols: int = 4, size: int = 240):
    """Each photo annotated by ``pipeline`` (a ``FacePipeline``) followed by the crops it classified, packed
    into lines of ``cols`` panels (more when one photo has more faces) without splitting a photo's panels.

    Returns (images, titles, cols, rows) for ``viz.image_grid``; short lines are padded with blank panels.
    ``rows`` holds one dict per face (photo, face, each task's label, its uncertain tasks) for a table."""
    from faceprompt.demo.pipeline import draw

    panels, rows = [], []
    for name, photo in photos.items():
        result = pipeline.annotate(photo)
        drawn = draw(photo, result)
        drawn.thumbnail((size, size))
        row = [(drawn, f"{name}: {len(result.faces)} face(s)")]
        for i, (face, crop) in enumerate(zip(result.faces, pipeline.crops(photo, result)), start=1):
            row.append((crop.resize((size, size)), f"face {i}, {face.crop} crop"))
            rows.append({"photo": name, "face": i, **{task: p.label for task, p in face.predictions.items()},
                         "uncertain": ", ".join(face.uncertain) or "-"})
        panels.append(row)
    cols = max(cols, *(len(row) for row in panels)) if panels else cols
    blank = (Image.new("RGB", (size, size), (255, 255, 255)), "")
    lines: list[list] = [[]]
    for row in panels:  # a photo and its crops stay on one line of the grid
        if len(lines[-1]) + len(row) > cols:
            lines[-1] += [blank] * (cols - len(lines[-1]))
            lines.append([])
        lines[-1] += row
    lines[-1] += [blank] * (cols - len(lines[-1]))
    cells = [cell for line in lines for cell in line]
    return [image for image, _ in cells], [title for _, title in cells], cols, rows


def agreement(rows: list[dict], truth: dict[str, str] = PORTRAIT_TRUTH) -> str:
    """How many faces of ``annotated_with_crops``' rows got each known label:
    'gender right on 3 of 8 faces, age on 0 of 8'."""
    counts = [f"{sum(row.get(task) == label for row in rows)} of {len(rows)}" for task, label in truth.items()]
    tasks = list(truth)
    rest = [f"{task} on {count}" for task, count in zip(tasks[1:], counts[1:])]
    return ", ".join([f"{tasks[0]} right on {counts[0]} faces", *rest])


def face_table(rows: list[dict]):
    """``annotated_with_crops``' rows as a table indexed by photo and face (empty without rows)."""
    import pandas as pd

    table = pd.DataFrame(rows)
    return table.set_index(["photo", "face"]) if len(table) else table
