"""Procedurally drawn faces whose gender, age and emotion show as visible features.

The package's offline default dataset: with no download, ``make_synthetic_dataset`` writes a few
thousand labelled faces in the manifest format, so every pipeline (prepare, train, evaluate, demo)
runs on a laptop. The cues are deliberate and documented, so a small model can learn them:

========= ====================================================================================
gender    hair length (long hair falls past the chin for ``female``), lip colour, brow thickness;
          10% of faces draw their hair length from the other gender, so it is not a perfect cue
age bin   head shape (round and big-eyed for babies, longer with age), cheek lines from 30,
          forehead wrinkles from 40 (one more per decade), hair greying from 50, white at 70+
emotion   mouth (smile, frown, open O, wide open, tight, lopsided) and brows (raised, slanted,
          lowered) with a random intensity; surprise and fear also widen the eyes
========= ====================================================================================

Noise that a model must ignore: skin tone, hair colour, background colour and blobs, position,
scale and rotation jitter, pixel noise.  Everything is deterministic given ``seed``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from faceprompt.data.manifest import write_manifest
from faceprompt.tasks import AGE_BINS, EMOTIONS, GENDERS

# Representative age range per bin (inclusive); the raw age is drawn inside the bin.
_BIN_AGES: dict[str, tuple[int, int]] = {
    "0-2": (0, 2), "3-9": (3, 9), "10-19": (10, 19), "20-29": (20, 29), "30-39": (30, 39),
    "40-49": (40, 49), "50-59": (50, 59), "60-69": (60, 69), "70+": (70, 90),
}
_SKIN = [(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 96), (141, 85, 54), (98, 60, 40)]
_HAIR = [(30, 25, 20), (70, 45, 25), (120, 80, 40), (200, 160, 90), (150, 50, 30)]
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class FaceSpec:
    """The labels of one synthetic face."""

    gender: str
    age: int
    age_bin: str
    emotion: str


def random_spec(rng: np.random.Generator) -> FaceSpec:
    """Uniform over genders, age bins and emotions (balanced classes make accuracy easy to read)."""
    age_bin = AGE_BINS[rng.integers(len(AGE_BINS))]
    low, high = _BIN_AGES[age_bin]
    return FaceSpec(
        gender=GENDERS[rng.integers(len(GENDERS))],
        age=int(rng.integers(low, high + 1)),
        age_bin=age_bin,
        emotion=EMOTIONS[rng.integers(len(EMOTIONS))],
    )


def draw_face(spec: FaceSpec, size: int = 128, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw one ``size`` x ``size`` RGB face showing ``spec``'s labels (see the module docstring)."""
    if not 16 <= size <= 1024:
        raise ValueError(f"synthetic face size must be 16..1024 pixels, got {size}")
    rng = rng if rng is not None else np.random.default_rng(0)
    # Draw at a fixed canvas scale of 2x and downsample: antialiases the strokes cheaply.
    canvas = size * 2
    img = Image.new("RGB", (canvas, canvas), _background_colour(rng))
    draw = ImageDraw.Draw(img)
    _background_blobs(draw, canvas, rng)

    a = AGE_BINS.index(spec.age_bin)
    s = canvas * rng.uniform(0.9, 1.1)  # face scale jitter
    cx = canvas / 2 + rng.uniform(-0.07, 0.07) * canvas
    cy = canvas / 2 + rng.uniform(-0.05, 0.07) * canvas
    rx = s * (0.25 + 0.012 * min(a, 3))
    ry = rx * (1.0 + 0.07 * min(a, 4)) if a else rx * 0.95  # babies round, adults longer
    skin = _jitter(_SKIN[rng.integers(len(_SKIN))], rng, 12)
    hair = _hair_colour(a, rng)

    long_hair = (spec.gender == "female") != (rng.random() < 0.1)
    if long_hair and a > 0:
        draw.rounded_rectangle(
            (cx - rx * 1.25, cy - ry * 1.15, cx + rx * 1.25, cy + ry * rng.uniform(1.3, 1.7)),
            radius=rx * 0.6, fill=hair)
    draw.rectangle((cx - rx * 0.35, cy + ry * 0.7, cx + rx * 0.35, cy + ry * 1.6), fill=skin)  # neck
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
    if a > 0:  # babies have (almost) no hair
        cap = 1.08 if long_hair else 1.03
        draw.pieslice((cx - rx * cap, cy - ry * 1.12, cx + rx * cap, cy + ry * 0.55), 180, 360, fill=hair)

    lw = max(1, round(canvas / 90))
    _draw_eyes_and_brows(draw, spec, a, cx, cy, rx, ry, lw, rng, hair)
    _draw_nose(draw, spec, cx, cy, rx, ry, lw, skin)
    _draw_mouth(draw, spec, cx, cy, rx, ry, lw, rng)
    _draw_age_lines(draw, a, cx, cy, rx, ry, lw, skin)

    img = img.rotate(rng.uniform(-8, 8), resample=Image.BILINEAR, center=(cx, cy),
                     fillcolor=img.getpixel((0, 0)))
    img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.int16) + rng.normal(0, 6, (size, size, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _jitter(colour, rng, amount):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _background_colour(rng):
    return tuple(int(v) for v in rng.integers(40, 230, 3))


def _background_blobs(draw, canvas, rng):
    for _ in range(rng.integers(0, 4)):
        x, y = rng.uniform(0, canvas, 2)
        r = rng.uniform(0.05, 0.2) * canvas
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_background_colour(rng))


def _hair_colour(age_index: int, rng) -> tuple[int, int, int]:
    base = np.array(_HAIR[rng.integers(len(_HAIR))], dtype=float)
    grey = {6: 0.45, 7: 0.7, 8: 0.95}.get(age_index, 0.0)  # 50-59, 60-69, 70+
    mixed = base * (1 - grey) + np.array([215, 215, 215]) * grey
    return _jitter(tuple(int(v) for v in mixed), rng, 10)


def _draw_eyes_and_brows(draw, spec, a, cx, cy, rx, ry, lw, rng, hair):
    eye_y = cy - ry * 0.15
    eye_dx = rx * 0.4
    eye_r = rx * (0.16 if a == 0 else 0.12 if a == 1 else 0.09)  # big eyes read as young
    wide = spec.emotion in ("surprise", "fear")
    squint = spec.emotion in ("happiness", "disgust", "anger")
    eye_h = eye_r * (1.35 if wide else 0.6 if squint else 1.0)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        draw.ellipse((ex - eye_r * 1.2, eye_y - eye_h, ex + eye_r * 1.2, eye_y + eye_h), fill=(250, 250, 250))
        pr = min(eye_r, eye_h) * 0.6
        draw.ellipse((ex - pr, eye_y - pr, ex + pr, eye_y + pr), fill=(40, 30, 30))

    intensity = rng.uniform(0.6, 1.0)
    lift = {"surprise": 0.55, "fear": 0.4}.get(spec.emotion, 0.0) * intensity
    # Positive slant lowers the inner ends (anger, disgust); negative raises them (sadness, fear).
    slant = {"anger": 1.0, "disgust": 0.5, "sadness": -0.8, "fear": -0.6}.get(spec.emotion, 0.0) * intensity
    brow_y = eye_y - eye_r * 1.9 - lift * eye_r * 2
    brow_w = max(lw, round(lw * (2.2 if spec.gender == "male" else 1.3)))
    colour = tuple(int(c * 0.8) for c in hair) if a else (150, 120, 100)
    for side in (-1, 1):
        outer = (cx + side * eye_dx * 1.6, brow_y)
        inner = (cx + side * eye_dx * 0.45, brow_y + slant * eye_r * 1.2)
        draw.line((outer, inner), fill=colour, width=brow_w)


def _draw_nose(draw, spec, cx, cy, rx, ry, lw, skin):
    shade = tuple(int(c * 0.75) for c in skin)
    draw.line(((cx, cy), (cx - rx * 0.08, cy + ry * 0.22), (cx + rx * 0.05, cy + ry * 0.24)), fill=shade, width=lw)
    if spec.emotion == "disgust":  # wrinkled nose
        for dy in (0.05, 0.11):
            draw.line(((cx - rx * 0.12, cy + ry * dy), (cx + rx * 0.12, cy + ry * dy)), fill=shade, width=lw)


def _draw_mouth(draw, spec, cx, cy, rx, ry, lw, rng):
    my = cy + ry * 0.5
    mw = rx * 0.42 * rng.uniform(0.85, 1.15)
    k = rng.uniform(0.6, 1.0)  # expression intensity
    lip = (190, 60, 70) if spec.gender == "female" else (140, 70, 60)
    width = max(lw, round(lw * 1.6))
    e = spec.emotion
    if e == "happiness":
        draw.arc((cx - mw, my - mw * 0.7 * k, cx + mw, my + mw * 0.7 * k), 15, 165, fill=lip, width=width)
    elif e == "sadness":
        draw.arc((cx - mw, my, cx + mw, my + mw * 0.9 * k), 200, 340, fill=lip, width=width)
    elif e == "surprise":
        r = mw * 0.45 * (0.7 + 0.3 * k)
        draw.ellipse((cx - r, my - r * 1.2, cx + r, my + r * 1.2), fill=(60, 20, 25), outline=lip, width=width)
    elif e == "fear":
        h = mw * 0.28 * k
        draw.ellipse((cx - mw * 0.9, my - h, cx + mw * 0.9, my + h), fill=(60, 20, 25), outline=lip, width=width)
    elif e == "anger":
        draw.line(((cx - mw * 0.8, my + 2), (cx + mw * 0.8, my + 2)), fill=lip, width=width * 2)
    elif e == "disgust":  # one corner pulled up: lopsided
        draw.line(((cx - mw, my + mw * 0.1), (cx, my), (cx + mw, my - mw * 0.45 * k)), fill=lip, width=width)
    else:  # neutral
        draw.line(((cx - mw, my), (cx + mw, my)), fill=lip, width=width)


def _draw_age_lines(draw, a, cx, cy, rx, ry, lw, skin):
    shade = tuple(int(c * 0.7) for c in skin)
    if a >= 4:  # 30+: lines from nose to mouth corners
        for side in (-1, 1):
            draw.line(((cx + side * rx * 0.25, cy + ry * 0.2), (cx + side * rx * 0.5, cy + ry * 0.55)),
                      fill=shade, width=lw)
    for i in range(max(0, a - 4)):  # 40+: one forehead wrinkle per decade
        y = cy - ry * (0.45 + 0.08 * i)
        draw.arc((cx - rx * 0.5, y - ry * 0.05, cx + rx * 0.5, y + ry * 0.05), 180, 360, fill=shade, width=lw)


def _split(u: float, fractions=SPLIT_FRACTIONS) -> str:
    train, val, _ = fractions
    return "train" if u < train else "val" if u < train + val else "test"


def make_synthetic_dataset(out_dir: str | os.PathLike, n: int = 1500, size: int = 128, seed: int = 0,
                           missing: float = 0.0) -> Path:
    """Write ``n`` synthetic faces to ``out_dir/images`` and a manifest; return the manifest path.

    Splits are about 70/15/15 train/val/test. ``missing`` > 0 blanks each label independently with
    that probability (to exercise masked multitask losses). Same arguments, same bytes.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 64 <= size <= 224:
        raise ValueError(f"size must be 64..224 pixels, got {size}")
    if not 0.0 <= missing < 1.0:
        raise ValueError(f"missing must be in [0, 1), got {missing}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])  # per-image stream: image i never depends on n
        spec = random_spec(rng)
        rel = f"images/{i:05d}.png"
        draw_face(spec, size, rng).save(out_dir / rel, compress_level=1)
        labels = {"gender": spec.gender, "age": str(spec.age), "age_bin": spec.age_bin, "emotion": spec.emotion}
        if missing:
            if rng.random() < missing:
                labels["gender"] = ""
            if rng.random() < missing:
                labels["age"] = labels["age_bin"] = ""
            if rng.random() < missing:
                labels["emotion"] = ""
        rows.append({"path": rel, "dataset": "synthetic", "split": _split(rng.random()), **labels,
                     "race": "", "identity": "", "source": f"synthetic seed={seed} index={i}"})
    return write_manifest(rows, out_dir / "manifest.csv")
