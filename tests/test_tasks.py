"""Tasks: class order, age binning, prompt wording, lookup errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from faceprompt.tasks import (
    AGE, AGE_BINS, EMOTION, EMOTIONS, GENDER, TASKS, age_bin_index, age_to_bin, get_tasks, with_templates,
)


@pytest.mark.parametrize("age, label", [
    (0, "0-2"), (2, "0-2"), (2.9, "0-2"), (3, "3-9"), (9, "3-9"), (10, "10-19"), (19, "10-19"),
    (20, "20-29"), (29.5, "20-29"), (69, "60-69"), (70, "70+"), (116, "70+"), ("45", "40-49"),
    (np.int64(33), "30-39"),
])
def test_age_to_bin_edges(age, label):
    assert age_to_bin(age) == label
    assert age_bin_index(age) == AGE_BINS.index(label)


@pytest.mark.parametrize("age", [-1, -0.5, math.nan, float("nan"), None, "", "unknown", 1000])
def test_missing_or_impossible_age_has_no_bin(age):
    assert age_to_bin(age) is None
    assert age_bin_index(age) is None


def test_age_bins_are_the_nine_published_bins():
    assert AGE_BINS == ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
    assert AGE.classes == AGE_BINS


def test_emotion_order_is_raf_db_basic():
    # list_patition_label.txt: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral
    raf = {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger", 7: "neutral"}
    assert EMOTIONS == tuple(raf[k] for k in range(1, 8))
    assert EMOTION.classes == EMOTIONS


def test_gender_classes():
    assert GENDER.classes == ("male", "female")


@pytest.mark.parametrize("task", list(TASKS.values()), ids=list(TASKS))
def test_prompts_fill_every_template_with_each_class_in_order(task):
    for template in task.templates:
        prompts = task.prompts(template)
        assert len(prompts) == task.num_classes
        for cls, prompt in zip(task.classes, prompts):
            assert prompt == template.format(task.words(cls))
            assert "{}" not in prompt and task.words(cls) in prompt
    assert task.prompts() == task.prompts(task.templates[0])


def test_wording_covers_only_known_classes():
    for task in TASKS.values():
        assert set(task.wording) <= set(task.classes)


def test_words_fall_back_to_the_class_name():
    assert GENDER.words("female") == "woman"
    assert with_templates(GENDER, ("a {} face.",)).words("nonbinary") == "nonbinary"


def test_with_templates_replaces_templates_and_refuses_ones_without_a_slot():
    task = with_templates(EMOTION, ("a {} face.",))
    assert task.prompts() == [f"a {EMOTION.words(c)} face." for c in EMOTIONS]
    assert EMOTION.templates != task.templates  # the original is untouched
    for bad in [(), ("no slot here",), ("a {} face.", "no slot")]:
        with pytest.raises(ValueError, match="placeholder"):
            with_templates(EMOTION, bad)


def test_index_of_labels_and_unknown_label_error():
    assert AGE.index("70+") == 8
    with pytest.raises(ValueError, match="emotion.*contempt"):
        EMOTION.index("contempt")


def test_get_tasks_defaults_and_order():
    assert [t.name for t in get_tasks()] == ["gender", "age", "emotion"]
    assert [t.name for t in get_tasks(["emotion", "gender"])] == ["emotion", "gender"]


@pytest.mark.parametrize("names", [["gender", "race"], ["Age"], ["expression"]])
def test_get_tasks_refuses_unknown_names(names):
    with pytest.raises(ValueError, match="unknown task"):
        get_tasks(names)
