"""Where things are: the project root and the shared data folder, resolved in one place."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ROOT_MARKERS = ("pyproject.toml", "_config.yml")
SHARED_DATA_ENV = "FACEPROMPT_SHARED_DATA"
SHARED_PLACEHOLDER = "{shared}"  # how a profile names the shared data folder


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding the project files."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if all((folder / marker).is_file() for marker in ROOT_MARKERS):
            return folder
    raise FileNotFoundError(f"no project root (a folder with {', '.join(ROOT_MARKERS)}) at or above {here}")


def _fallback_root() -> Path:
    """The project root above the working directory, else the folder above the installed package."""
    try:
        return project_root()
    except FileNotFoundError:
        return Path(__file__).resolve().parent.parent


def shared_data_root(root: str | os.PathLike | None = None) -> Path:
    """``$FACEPROMPT_SHARED_DATA`` if set, else ``../shared/data`` beside the project root.

    ``root`` is the project root to resolve against (default: found from the working directory).
    """
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    base = Path(root) if root is not None else _fallback_root()
    return (base / ".." / "shared" / "data").resolve()


def shared_dataset(name: str, root: str | os.PathLike | None = None) -> Path:
    """One dataset's folder under the shared data folder (it may not exist)."""
    return shared_data_root(root) / name


def fill_shared(value: Any, shared: str | os.PathLike | None = None) -> Any:
    """``value`` with ``{shared}`` in each of its strings (inside lists and mappings too) replaced by the shared
    data folder: ``shared``, else the one :func:`shared_data_root` finds."""
    folder = str(shared_data_root() if shared is None else shared)

    def fill(item: Any) -> Any:
        if isinstance(item, str):
            return item.replace(SHARED_PLACEHOLDER, folder)
        if isinstance(item, list):
            return [fill(v) for v in item]
        if isinstance(item, dict):
            return {k: fill(v) for k, v in item.items()}
        return item

    return fill(value)
