"""One writer per output folder: ``DIR/.lock`` names the process writing there (pid, host, start time).

The claim itself is an OS file lock (``flock``) held on that file for as long as the writer runs, so it ends
when the process ends, however it ends: a lock file left behind by a process that died is taken over with
a warning naming it, while a live writer makes a second one fail at once with a message naming the holder.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class FolderLockedError(RuntimeError):
    """Another live process is writing the folder; the message names it."""


def _describe(holder: dict) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} ({holder.get('command', '?')}, since {when})"


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", "replace")
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


class FolderLock:
    """``with FolderLock(out, "faceprompt prepare"):`` while writing ``out``; raises FolderLockedError if
    another live process holds it."""

    def __init__(self, folder: str | os.PathLike, command: str):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def _open(self) -> int:
        """The lock file, never through a link: a planted symlink must not let the lock write elsewhere."""
        if self.path.is_symlink():
            raise FolderLockedError(f"{self.path} is a symbolic link, not a lock file; remove it and run again")
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            raise FolderLockedError(f"{self.path}: cannot open the lock file ({err.strerror}); "
                                    f"remove it and run again") from None

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise FolderLockedError(
                    f"{self.folder} is being written by {_describe(holder)}; wait for it to finish or choose "
                    f"another output folder") from None
            # The holder before us may have removed the file between our open and our lock: retry on the new one.
            if not self.path.exists() or os.stat(self.path).st_ino != os.fstat(fd).st_ino:
                os.close(fd)
                continue
            break
        previous = _read_holder(fd)
        if previous:
            log.warning("%s: taking over the lock left by %s, which is no longer running", self.folder,
                        _describe(previous))
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": self.command}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # removed while still locked: the next writer finds a clean slate
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
