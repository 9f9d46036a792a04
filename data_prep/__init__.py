"""Dataset adapters: each reads one dataset in its published layout and returns manifest rows.

Every module exposes ``NAME``, ``DETECT_BY_DEFAULT`` and ``scan(root, **options) -> ScanResult``.
``faceprompt prepare`` (``faceprompt.prepare``) turns those rows into face crops and a manifest.
"""
from __future__ import annotations

import importlib
from types import ModuleType

ADAPTERS: tuple[str, ...] = (
    "celebahq", "lfw", "rafdb", "vggface2", "utkface", "fairface", "facial_expressions", "synthetic",
)


def get_adapter(name: str) -> ModuleType:
    """The adapter module for a dataset name."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(ADAPTERS)}")
    return importlib.import_module(f"data_prep.{name}")
