"""Errors a user can act on: the CLI prints them as one line, never a traceback."""
from __future__ import annotations


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a long command after it saved what it had; the message says how to go on."""
