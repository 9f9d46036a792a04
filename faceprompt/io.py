"""Atomic file writes: a reader never sees a half-written file, a crash never loses the old one."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None


def check_is_file(path: Path, folder_error: Exception, missing_error: Exception) -> None:
    """Raise ``folder_error`` when ``path`` is a folder, ``missing_error`` when nothing is there."""
    if path.is_dir():
        raise folder_error
    if not path.is_file():
        raise missing_error


def refuse_link(path: str | os.PathLike) -> None:
    """A folder faceprompt writes into must not be a symbolic link: a planted link would send the writes
    elsewhere."""
    if Path(path).is_symlink():
        raise ValueError(f"{path} is a symbolic link (to {os.readlink(path)}); faceprompt writes only into real "
                         f"folders: remove the link and run again")


def relative_to(path: str | os.PathLike | None, root: str | os.PathLike = ".") -> str | None:
    """``path`` relative to ``root`` when inside it, else its name alone: a recorded or shipped file must not
    carry one machine's folder layout."""
    if not path:
        return path
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).name
