"""The book's method lists, all derived from the prompt registry (``faceprompt.prompts.METHODS``)."""
from __future__ import annotations

from faceprompt.prompts import list_methods, resolve_method

# Combinations are not registered (any TEXT+VISUAL pair resolves); the book trains this one
# (methods/combinations.md).
COMBINATIONS = ("softcpt+vpt",)


def book_methods() -> list[str]:
    """Every method the book compares: the registered ones in registry order, then the combinations."""
    return [*list_methods(), *COMBINATIONS]


def trains(method: str) -> bool:
    """Whether ``method`` learns anything (zero-shot: hand-written templates, no visual prompt)."""
    preset = resolve_method(method)
    return not (preset.text == "templates" and preset.visual == "none")


def trained_methods() -> list[str]:
    """The methods ``30_train`` runs: every book method that learns something."""
    return [m for m in book_methods() if trains(m)]


def text_methods() -> list[str]:
    """The trained methods that leave the image path alone (their class features are computed once)."""
    return [m for m in trained_methods() if resolve_method(m).visual == "none"]


def attention_methods() -> list[str]:
    """What the attention chapter looks inside: zero-shot and every registered method with visual prompts
    only (the pooling head's weight on prompt tokens exists only there)."""
    return [m for m in list_methods() if not trains(m) or resolve_method(m).text == "templates"]


def method_order(methods) -> list[str]:
    """``methods`` in the book's order (:func:`book_methods`), others after them alphabetically."""
    methods = list(dict.fromkeys(methods))
    preferred = book_methods()
    return [m for m in preferred if m in methods] + sorted(m for m in methods if m not in preferred)


def run_name(method: str, seed: int | None = None) -> str:
    """The run folder name of a method ('softcpt+vpt' -> 'softcpt_vpt'); seeds other than 0 add
    '-seed<n>' ('vpt', 2 -> 'vpt-seed2'), so seed 0 keeps the plain name other notebooks look for."""
    name = method.replace("+", "_").replace(":", "_")
    return name if not seed else f"{name}-seed{int(seed)}"
