"""Hand values to the book and format numbers for prose.

A notebook calls :func:`glue`; MyST-NB stores the value in the executed notebook and a chapter quotes
it by key (``{glue:text}`notebook.ipynb::key:s```). Every key is declared in :mod:`faceprompt.book._machinery.keys`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

GLUED: dict[str, Any] = {}  # everything glued in this process (also outside a kernel)


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Store ``value`` under ``name`` for the book (MyST-NB glue in a kernel) and return it."""
    GLUED[name] = value
    try:
        from IPython import get_ipython

        if get_ipython() is not None:
            from myst_nb import glue as nb_glue

            nb_glue(name, value, display=display)
    except ImportError:  # no IPython / MyST-NB: plain Python use
        pass
    return value


def key(*parts: Any) -> str:
    """A glue key from parts: ('acc', 'softcpt+vpt', 'synthetic', 'age') -> 'acc-softcpt+vpt-synthetic-age'."""
    return "-".join(str(p) for p in parts)


def percent(value: float | None, digits: int = 1) -> str:
    """0.6123 -> '61.2%'; NaN -> 'n/a'."""
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f}%"


def points(value: float | None, digits: int = 1) -> str:
    """A difference of two accuracies in percentage points, signed: 0.031 -> '+3.1 pp'."""
    if value is None or not np.isfinite(value):
        return "n/a"
    shown = round(100 * value, digits) or 0.0  # a change that rounds to zero reads +0.0, never -0.0
    return f"{shown:+.{digits}f} pp"


def count(value: float) -> str:
    """12345 -> '12,345'; 16809984 -> '16.81 M'."""
    value = int(value)
    return f"{value / 1e6:.2f} M" if value >= 1_000_000 else f"{value:,}"


def show(table, digits: int = 3):
    """A table rounded for display (notebooks render it as HTML)."""
    return table.round(digits)


def span(values, fmt: str = "{:.0f}", unit: str = "") -> str:
    """The range of ``values`` as prose: '3–4%' (``fmt`` applied to min and max), or one value when equal."""
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return f"{low}{unit}" if low == high else f"{low}–{high}{unit}"
