"""Measurements from runs that kept no JSON, copied once into ``book/_data/logged_measurements.json``
with the command that printed them; glued under their own keys so no chapter types a number."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from faceprompt.book._machinery.glue import glue
from faceprompt.io import read_json

LOGGED = "book/_data/logged_measurements.json"


def read_logged(path: str | Path = LOGGED) -> dict:
    """The file's tables and values; refuses an entry without a source."""
    data = read_json(path)
    for section in ("tables", "values"):
        for name, entry in data.get(section, {}).items():
            if not str(entry.get("source", "")).strip():
                raise ValueError(f"{path}: {section}.{name} names no source")
    return data


def glue_logged(path: str | Path = LOGGED) -> dict[str, object]:
    """Glue every value (a string) and every table (a DataFrame) of the file under its name."""
    data = read_logged(path)
    glued = {}
    for name, entry in data.get("values", {}).items():
        glued[name] = glue(name, str(entry["value"]))
    for name, entry in data.get("tables", {}).items():
        table = pd.DataFrame(entry["rows"], columns=entry["columns"]).set_index(entry["columns"][0])
        glued[name] = glue(name, table, display=False)
    return glued
