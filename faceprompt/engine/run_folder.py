"""A run folder's guard: what counts as a run already there, and one writer at a time."""
from __future__ import annotations

import os
from pathlib import Path

from faceprompt.checkpoint import CONFIG_FILE, PROMPTS_FILE
from faceprompt.engine.state import CHECKPOINT_FILE
from faceprompt.lockfile import FolderLock

CHECKPOINT_INFO = "checkpoint.json"
# Every file a run writes: any one of them left means the folder holds (part of) a run.
RUN_FILES = (CONFIG_FILE, PROMPTS_FILE, CHECKPOINT_FILE, CHECKPOINT_INFO, "metrics.json", "metrics.csv")


def run_files_in(folder: Path) -> list[str]:
    return [name for name in RUN_FILES if (Path(folder) / name).exists()]


def check_run_folder(run_dir: Path, resume: bool) -> None:
    """A new run needs a folder that holds no run file; a resumed one needs its checkpoint."""
    if resume and not (run_dir / CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"run_id: {run_dir} has no {CHECKPOINT_FILE} to resume from")
    found = run_files_in(run_dir)
    if not resume and found:
        raise ValueError(f"run_id: {run_dir} already holds a run ({', '.join(found)}); resume it (--resume), "
                         f"delete it, or choose another run_id")


def is_main_process() -> bool:
    """Only rank 0 of a multi-process launch writes (and locks) the run folder."""
    return int(os.environ.get("RANK", "0")) == 0


class RunFolderLock(FolderLock):
    """``FolderLock`` on a run folder for rank 0 of a launch; the other ranks hold nothing. The folders the
    lock had to make are removed again if the run wrote nothing into them (a refused config leaves no trace)."""

    def __init__(self, run_dir: Path, command: str = "faceprompt train"):
        super().__init__(run_dir, command)
        self._made: list[Path] = []

    def acquire(self) -> "RunFolderLock":
        if not is_main_process():
            return self
        folder = Path(self.folder).absolute()
        self._made = [p for p in (folder, *folder.parents) if not p.exists()]
        return super().acquire()

    def release(self) -> None:
        super().release()
        for folder in self._made:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote there
                break
        self._made = []
