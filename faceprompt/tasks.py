"""The three facial-attribute tasks: classes, prompt wording, age binning.

Everything here is plain data so a user can edit class wording or templates
without touching the methods. Class *names* (the ``classes`` tuples) are the
labels stored in manifests; ``wording`` is what goes into a text prompt.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

AGE_BINS: tuple[str, ...] = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
# Lower edge of each bin; a bin runs up to the next edge (exclusive).
_AGE_BIN_EDGES: tuple[int, ...] = (0, 3, 10, 20, 30, 40, 50, 60, 70)

# RAF-DB basic order: label k in list_patition_label.txt is EMOTIONS[k - 1].
EMOTIONS: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
GENDERS: tuple[str, ...] = ("male", "female")


@dataclass(frozen=True)
class Task:
    """One classification task over a fixed, ordered set of classes."""

    name: str
    classes: tuple[str, ...]
    description: str  # the sentence SoftCPT's meta-network reads
    wording: dict[str, str] = field(default_factory=dict)  # class -> words used in prompts
    templates: tuple[str, ...] = ("a photo of a {} person.",)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def words(self, cls: str) -> str:
        return self.wording.get(cls, cls)

    def index(self, label: str) -> int:
        """Class index of a label; raises ValueError naming the task and the allowed labels."""
        try:
            return self.classes.index(label)
        except ValueError:
            raise ValueError(f"unknown {self.name} label {label!r}; expected one of {list(self.classes)}") from None

    def prompts(self, template: str | None = None) -> list[str]:
        """One prompt per class for a template (the first template by default)."""
        template = template or self.templates[0]
        return [template.format(self.words(c)) for c in self.classes]


# Class -> the words a prompt uses for it.
_GENDER_WORDS = {"male": "man", "female": "woman"}
_AGE_WORDS = {
    "0-2": "baby", "3-9": "child", "10-19": "teenager", "20-29": "person in their twenties",
    "30-39": "person in their thirties", "40-49": "person in their forties", "50-59": "person in their fifties",
    "60-69": "person in their sixties", "70+": "person over seventy",
}
_EMOTION_WORDS = {
    "surprise": "surprised", "fear": "fearful", "disgust": "disgusted", "happiness": "happy",
    "sadness": "sad", "anger": "angry", "neutral": "neutral",
}

GENDER = Task("gender", GENDERS, "Classify the person's gender.", _GENDER_WORDS,
              ("a photo of a {}.", "a close-up photo of a {}'s face.", "a face of a {}."))
AGE = Task("age", AGE_BINS, "Classify the person's age.", _AGE_WORDS,
           ("a photo of a {}.", "a face of a {}.", "a close-up photo of a {}."))
EMOTION = Task("emotion", EMOTIONS, "Classify the person's facial expression.", _EMOTION_WORDS,
               ("a photo of a {} person.", "a face of a {} person.", "a close-up photo of a {} face."))

TASKS: dict[str, Task] = {t.name: t for t in (GENDER, AGE, EMOTION)}
DEFAULT_TASKS: tuple[str, ...] = tuple(TASKS)


# --- the thesis's own prompt text (AngeloMolinario/Codice-Tesi) -------------------------------------
# Its configs (config/softpe_*.json) name the classes raw, emotions as adjectives, and the tasks by
# these phrases; its prompts end in "." (wrappers/promptopt/prompt_learner.py).
THESIS_CLASS_WORDS: dict[str, dict[str, str]] = {
    "age": {b: b for b in AGE_BINS},
    "gender": {g: g for g in GENDERS},
    "emotion": {"surprise": "surprise", "fear": "fear", "disgust": "disgust", "happiness": "happy",
                "sadness": "sad", "anger": "angry", "neutral": "neutral"},
}
THESIS_DESCRIPTIONS: dict[str, str] = {
    "age": "age estimation from face picture.",
    "gender": "gender recognition from facial features.",
    "emotion": "emotion classification from facial expression.",
}
WORDINGS: tuple[str, ...] = ("faceprompt", "thesis")

# Named sets of one hand-written sentence per class (no template, no ensembling).
# "thesis": the zero-shot baseline's sentences, verbatim (baseline.py, TEXT_PROMPTS).
CLASS_SENTENCES: dict[str, dict[str, dict[str, str]]] = {
    "thesis": {
        "age": {
            **{b: f"a photo of a person between {b.split('-')[0]} and {b.split('-')[1]} years old"
               for b in AGE_BINS[:-1]},
            "70+": "a photo of a person 70 years old or older",
        },
        "gender": {"male": "a photo of a male person", "female": "a photo of a female person"},
        "emotion": {
            "surprise": "a photo of a surprised person", "fear": "a photo of a fearful person",
            "disgust": "a photo of a disgusted person", "happiness": "a photo of a happy person",
            "sadness": "a photo of a sad person", "anger": "a photo of an angry person",
            "neutral": "a photo of a neutral person",
        },
    },
}


def worded(task: Task, wording: str = "faceprompt") -> Task:
    """``task`` with the class words and description of a wording: faceprompt's own, or the thesis's."""
    if wording == "faceprompt":
        return task
    if wording != "thesis":
        raise ValueError(f"unknown wording {wording!r}; known: {list(WORDINGS)}")
    if task.name not in THESIS_CLASS_WORDS:
        raise ValueError(f"the thesis has no wording for task {task.name!r}")
    return replace(task, wording=THESIS_CLASS_WORDS[task.name], description=THESIS_DESCRIPTIONS[task.name])


def class_sentences(name: str, task: Task) -> list[str]:
    """The sentence set ``name``'s sentence for each of ``task``'s classes, in class order."""
    if name not in CLASS_SENTENCES:
        raise ValueError(f"unknown sentence set {name!r}; known: {sorted(CLASS_SENTENCES)}")
    sentences = CLASS_SENTENCES[name].get(task.name, {})
    missing = [c for c in task.classes if c not in sentences]
    if missing:
        raise ValueError(f"sentence set {name!r} has no sentence for {task.name} classes {missing}")
    return [sentences[c] for c in task.classes]


def get_tasks(names: tuple[str, ...] | list[str] | None = None) -> tuple[Task, ...]:
    """Tasks by name, in the order given (all three by default)."""
    names = tuple(names or DEFAULT_TASKS)
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {list(TASKS)}")
    return tuple(TASKS[n] for n in names)


def with_templates(task: Task, templates: tuple[str, ...]) -> Task:
    """A copy of ``task`` with other prompt templates."""
    if not templates or any("{}" not in t for t in templates):
        raise ValueError("every template needs one '{}' placeholder for the class words")
    return replace(task, templates=tuple(templates))


# How a fractional age becomes a bin. floor: by the whole years lived (19.6 is 10-19); round: to the nearest
# whole year first (19.6 is 20-29), with Python's round, halves to even (2.5 stays 0-2, 9.5 is 10-19), as the
# thesis's map_age_to_group (dataset/dataset.py and dataset/split_csv.py at 4b18297).
AGE_BINNINGS: tuple[str, ...] = ("floor", "round")


def age_to_bin(age: float | int | None, binning: str = "floor") -> str | None:
    """The 9-bin label of an age in years (``binning``: see ``AGE_BINNINGS``); None for a missing or
    impossible age."""
    if binning not in AGE_BINNINGS:
        raise ValueError(f"unknown age binning {binning!r}; known: {list(AGE_BINNINGS)}")
    if age is None:
        return None
    try:
        age = float(age)
    except (TypeError, ValueError):
        return None
    if math.isnan(age) or age < 0 or age > 150:
        return None
    if binning == "round":
        age = float(round(age))
    for label, lower in zip(reversed(AGE_BINS), reversed(_AGE_BIN_EDGES)):
        if age >= lower:
            return label
    return None  # unreachable: age >= 0 always matches the first bin


def age_bin_index(age: float | int | None) -> int | None:
    label = age_to_bin(age)
    return None if label is None else AGE_BINS.index(label)
