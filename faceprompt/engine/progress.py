"""Progress bars, and Ctrl-C (or SIGTERM) turned into :class:`errors.Interrupted` saying how to resume."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterable, Iterator

from tqdm.auto import tqdm

from faceprompt.errors import Interrupted


def bar(items: Iterable, desc: str, enabled: bool, **options) -> tqdm:
    """A tqdm bar over ``items`` that draws nothing when ``enabled`` is false."""
    return tqdm(items, desc=desc, disable=not enabled, **options)


@contextlib.contextmanager
def interruptible(what: str, resume: str) -> Iterator[dict]:
    """Run a training loop so that Ctrl-C or SIGTERM ends it with ``Interrupted`` and no traceback.

    The loop keeps ``state["done"]`` (epochs finished: their checkpoint is on disk) current; the message
    names it and ``resume``, the command that continues. SIGTERM is handled only from the main thread.
    """
    state = {"done": 0}

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield state
    except Interrupted:
        raise
    except KeyboardInterrupt:
        if not state["done"]:
            raise Interrupted(f"{what} interrupted before its first epoch ended; nothing was saved") from None
        raise Interrupted(f"{what} interrupted after epoch {state['done']} (its checkpoint is kept); "
                          f"resume with: {resume}") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
