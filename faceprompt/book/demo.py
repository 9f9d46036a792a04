"""The demo chapter's example: a photo made of test faces, run through the demo app like an upload."""
from __future__ import annotations

import io

import pandas as pd

from faceprompt.book.datasets import test_rows

BACKGROUND = (200, 200, 200)
MAX_COLUMNS = 3


def example_photo(frame: pd.DataFrame, n: int = 6, face_size: int = 160, seed: int = 0):
    """A 'group photo' (PIL) of ``n`` test faces on a grey canvas, at most three to a row."""
    from PIL import Image

    from faceprompt.data.images import load_rgb

    pool = test_rows(frame)
    paths = list(pool.sample(min(n, len(pool)), random_state=seed)["path"])
    cols = min(MAX_COLUMNS, len(paths))
    rows = -(-len(paths) // cols)
    gap = face_size // 4
    canvas = Image.new("RGB", (cols * (face_size + gap) + gap, rows * (face_size + gap) + gap), BACKGROUND)
    for i, path in enumerate(paths):
        face = load_rgb(path).resize((face_size, face_size))
        canvas.paste(face, (gap + (i % cols) * (face_size + gap), gap + (i // cols) * (face_size + gap)))
    return canvas


def demo_example(app, photo):
    """Run ``photo`` through the demo app as if uploaded; returns the annotated image (or the photo)."""
    from faceprompt.demo.pipeline import draw

    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    result = app.process("example.png", buffer.getvalue())
    return photo if result is None else draw(photo, result)
