"""The book's method lists come from the prompt registry (faceprompt.book.methods)."""
from __future__ import annotations

import pytest

from faceprompt.book import methods
from faceprompt.prompts import METHODS, MethodPreset, list_methods, register_method


def test_lists_follow_the_registry():
    assert methods.book_methods()[:len(list_methods())] == list_methods()
    assert set(methods.COMBINATIONS) <= set(methods.book_methods())
    assert methods.trained_methods() == [m for m in methods.book_methods() if m != "zero-shot"]
    assert "zero-shot" in methods.attention_methods() and "coop" not in methods.attention_methods()
    assert not methods.trains("zero-shot") and methods.trains("softcpt+vpt")
    assert methods.text_methods() == ["coop", "softcpt"]


@pytest.fixture
def extra_method():
    preset = MethodPreset("vpt-wide", "templates", "vpt", summary="a method registered by a test")
    register_method(preset)
    yield preset.name
    METHODS.remove(preset.name)


def test_a_newly_registered_method_joins_every_list(extra_method):
    assert extra_method in methods.book_methods() and extra_method in methods.trained_methods()
    assert extra_method in methods.attention_methods()
    assert methods.method_order(["softcpt+vpt", extra_method, "zero-shot"]) == [
        "zero-shot", extra_method, "softcpt+vpt"]


def test_order_and_run_names():
    assert methods.method_order(["x", "softcpt+vpt", "zero-shot", "vpt"]) == ["zero-shot", "vpt", "softcpt+vpt", "x"]
    assert methods.run_name("softcpt+vpt", 0) == "softcpt_vpt" and methods.run_name("vpt", 2) == "vpt-seed2"
    assert methods.run_name("vpt-ts:batched=false") == "vpt-ts_batched=false"
