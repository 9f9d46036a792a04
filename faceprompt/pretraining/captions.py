"""Captions written from labels, and which (image, caption) pairs they make positive or leave out."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from faceprompt.pretraining.data import Labels
from faceprompt.tasks import AGE, AGE_BINS, EMOTIONS, GENDER, GENDERS, age_to_bin


@dataclass(frozen=True)
class Caption:
    """A caption and the labels it asserts: an image agrees with it when every asserted label matches."""

    text: str
    gender: int = -1  # -1: not mentioned
    age_range: tuple[float, float] | None = None  # inclusive years
    emotion: int = -1


# Noun-phrase templates; the first three of each task's templates in tasks.py are among them.
TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.", "a face of a {}.", "a close-up photo of a {}.", "a close-up photo of a {}'s face.",
    "a cropped photo of a {}.", "a portrait of a {}.", "a picture of a {}.", "a {}.",
)
_AGE_BIN_RANGE = {b: (lo, hi) for b, lo, hi in zip(AGE_BINS, (0, 3, 10, 20, 30, 40, 50, 60, 70),
                                                      (2, 9, 19, 29, 39, 49, 59, 69, 150))}
# (man, woman) wording of each age bin when gender is known too.
_GENDERED_AGE = {
    "0-2": ("baby boy", "baby girl"), "3-9": ("little boy", "little girl"), "10-19": ("teenage boy", "teenage girl"),
    **{b: (f"man {w.replace('person in their', 'in his')}", f"woman {w.replace('person in their', 'in her')}")
       for b, w in AGE.wording.items() if w.startswith("person in their")},
    "70+": ("man over seventy", "woman over seventy"),
}
_EMOTION_WORDS = {
    "surprise": ("surprised", "astonished"), "fear": ("fearful", "scared"), "disgust": ("disgusted",),
    "happiness": ("happy", "smiling"), "sadness": ("sad", "unhappy"), "anger": ("angry", "furious"),
    "neutral": ("neutral", "calm"),
}
AGE_TOLERANCE = 2  # "a 34 year old" agrees with ages 32..36


def _age_phrase(age: float, gender: int, rng: random.Random) -> tuple[str, tuple[float, float]]:
    """Age words (exact years or the age bin), with the gender folded in when known."""
    noun = GENDER.words(GENDERS[gender]) if gender >= 0 else "person"
    if rng.random() < 0.5:
        years = int(round(age))
        noun = "baby" if years < 2 and gender < 0 else noun
        return f"{years} year old {noun}", (years - AGE_TOLERANCE, years + AGE_TOLERANCE)
    label = age_to_bin(age)
    words = _GENDERED_AGE[label][gender] if gender >= 0 else AGE.words(label)
    return words, _AGE_BIN_RANGE[label]


def make_caption(gender: int, age: float, emotion: int, rng: random.Random) -> Caption:
    """A random caption from a random non-empty subset of the known labels."""
    known = [k for k, ok in (("gender", gender >= 0), ("age", not math.isnan(age)), ("emotion", emotion >= 0)) if ok]
    if not known:
        raise ValueError("an image without any label cannot be captioned")
    subsets = [[k] for k in known] + ([known] if len(known) > 1 else [])
    chosen = set(rng.choice(subsets))
    g = gender if "gender" in chosen else -1
    e = emotion if "emotion" in chosen else -1
    age_range = None
    if "age" in chosen:
        noun, age_range = _age_phrase(age, g, rng)
    else:
        noun = GENDER.words(GENDERS[g]) if g >= 0 else "person"
    if e >= 0:
        adjective = rng.choice(_EMOTION_WORDS[EMOTIONS[e]])
        if g < 0 and age_range is None and rng.random() < 0.25:
            noun = "face"  # "a close-up photo of a sad face." (the emotion task's own template)
        noun = f"{adjective} {noun}"
    return Caption(rng.choice(TEMPLATES).format(noun), g, age_range, e)


def caption_batch(labels: Labels, rng: random.Random) -> list[Caption]:
    return [make_caption(int(g), float(a), int(e), rng) for g, a, e in zip(labels.gender, labels.age, labels.emotion)]


def caption_targets(captions: Sequence[Caption], labels: Labels) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, mask), both [images, captions]: target 1 where the image's labels agree with every label the
    caption asserts; mask 0 where the caption asserts a label the image does not have (unknown, not wrong)."""
    n, m = len(labels), len(captions)
    targets = np.ones((n, m), dtype=bool)
    mask = np.ones((n, m), dtype=bool)
    for j, cap in enumerate(captions):
        if cap.gender >= 0:
            known = labels.gender >= 0
            mask[:, j] &= known
            targets[:, j] &= labels.gender == cap.gender
        if cap.emotion >= 0:
            known = labels.emotion >= 0
            mask[:, j] &= known
            targets[:, j] &= labels.emotion == cap.emotion
        if cap.age_range is not None:
            known = ~np.isnan(labels.age)
            mask[:, j] &= known
            lo, hi = cap.age_range
            with np.errstate(invalid="ignore"):
                targets[:, j] &= (labels.age >= lo) & (labels.age <= hi)
    targets &= mask
    return torch.from_numpy(targets).float(), torch.from_numpy(mask).float()


def pair_targets(captions: Sequence[Caption], unique: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain contrastive targets: image i matches only the text of its own caption."""
    index = {t: j for j, t in enumerate(unique)}
    targets = torch.zeros(len(captions), len(unique))
    targets[torch.arange(len(captions)), torch.tensor([index[c.text] for c in captions])] = 1.0
    return targets, torch.ones_like(targets)
