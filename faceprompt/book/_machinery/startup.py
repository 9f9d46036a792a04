"""Notebook start-up: work from the project root, cap torch's threads, keep logs short."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from faceprompt.locations import project_root

# Libraries whose deprecation and shape notices fill executed notebooks without saying anything about
# the book's numbers; faceprompt's own warnings stay visible.
QUIET_MODULES = r"(timm|open_clip|torch|torchvision|transformers|huggingface_hub|captum)(\.|$)"


def setup(threads: int | None = 1, root: bool = True, quiet: bool = True) -> Path:
    """Change to the project root (``root``), set torch's threads and quieten third-party warnings.

    One thread per notebook kernel is the fast choice on a small shared CPU (several kernels run at
    once, and tiny towers gain nothing from more); ``threads=None`` leaves torch's default.
    """
    import torch

    path = project_root() if root else Path.cwd()
    os.chdir(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if threads:
        torch.set_num_threads(int(threads))
    if quiet:
        quiet_library_warnings()
        logging.getLogger("faceprompt").setLevel(logging.WARNING)
    return path


def quiet_library_warnings() -> None:
    """Ignore UserWarning and FutureWarning raised from third-party modules only (``QUIET_MODULES``)."""
    for category in (UserWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=QUIET_MODULES)


def resolve_backbone(name: str | None) -> str:
    """``None`` or ``"default"`` -> the package default (the embedded face model when present)."""
    from faceprompt.predict import default_backbone

    return default_backbone() if name in (None, "", "default") else name
