"""Dataset adapters: each reads one dataset in its published layout and returns manifest rows.

Every adapter module exposes ``NAME``, ``DETECT_BY_DEFAULT`` and ``scan(root, **options) -> ScanResult``
(see :mod:`faceprompt.data.adapters.base`). :func:`faceprompt.data.prepare.prepare_dataset` turns those rows
into face crops and a manifest. Adapters are registered by name and imported on first use, so listing them is cheap.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from faceprompt.data.adapters.base import ScanResult, Skip, has_label, make_row
from faceprompt.registry import Registry

# dataset name -> the module that reads it
ADAPTERS: Registry[str] = Registry("dataset adapter")


def register_adapter(name: str, module: str) -> str:
    """Make ``module`` (an importable name holding ``scan``) the adapter of dataset ``name``; a taken name is
    refused."""
    return ADAPTERS.add(name, module)


for _name in ("celebahq", "lfw", "rafdb", "vggface2", "utkface", "fairface", "lagenda", "facial_expressions",
              "ferplus", "synthetic"):
    register_adapter(_name, f"faceprompt.data.adapters.{_name}")


def list_adapters() -> list[str]:
    return ADAPTERS.names()


def get_adapter(name: str) -> ModuleType:
    """The adapter module for a dataset name."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(ADAPTERS)}")
    return importlib.import_module(ADAPTERS[name])


__all__ = ["ADAPTERS", "ScanResult", "Skip", "get_adapter", "has_label", "list_adapters", "make_row",
           "register_adapter"]
