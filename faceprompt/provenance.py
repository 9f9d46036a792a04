"""What a recorded measurement was: the command that made it, when, and on how loaded a machine."""
from __future__ import annotations

import datetime
import os
import shlex


def run_record(argv: list[str]) -> dict:
    """What a recorded benchmark ran and when: its command line, the UTC date, cores and load average."""
    return {"command": shlex.join(argv), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"), "cpus": os.cpu_count(), "load_average": list(os.getloadavg())}
