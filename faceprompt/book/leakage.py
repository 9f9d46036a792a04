"""The held-out check: no test image of a run may be among a pretrained model's training images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from faceprompt.book.glue import glue

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def model_splits(backbone: str, pretrained_dir: str | Path = PRETRAINED_DIR) -> pd.DataFrame | None:
    """The split of every image an embedded model was trained on (``splits.csv.gz`` next to its weights:
    dataset, key, split), or None for a backbone without a record."""
    path = Path(pretrained_dir) / backbone / "splits.csv.gz"
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.is_file() else None


def held_out_check(manifests: dict[str, str], backbone: str, recorded: pd.DataFrame | None = None) -> pd.DataFrame:
    """For each prepared dataset: its test rows, how many the backbone's recorded split (``recorded``,
    default :func:`model_splits`) also holds out, and how many it trained on (must be 0; raises
    otherwise). Datasets the backbone never saw are reported as such. Glued as ``heldout-summary``."""
    from faceprompt.data.splits import read_splits

    recorded = model_splits(backbone) if recorded is None else recorded
    rows = []
    for name, manifest in manifests.items():
        ours = read_splits(Path(manifest).parent / "splits.csv")
        tested = sorted(k for k, s in ours.items() if s == "test")
        frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        row = {"dataset": name, "test rows": int((frame["split"] == "test").sum()), "model held out": np.nan,
               "model trained on": np.nan, "not in model record": np.nan}
        if recorded is not None and name in set(recorded["dataset"]):
            theirs = dict(zip(*recorded[recorded["dataset"] == name][["key", "split"]].values.T))
            row["model held out"] = sum(theirs.get(k) == "test" for k in tested)
            row["model trained on"] = sum(theirs.get(k) in ("train", "val") for k in tested)
            row["not in model record"] = sum(k not in theirs for k in tested)
        rows.append(row)
    table = pd.DataFrame(rows)
    checked = table.dropna(subset=["model trained on"])
    leaked = int(checked["model trained on"].sum()) if len(checked) else 0
    if leaked:
        raise ValueError(f"{leaked} test image(s) of {list(checked['dataset'])} were in {backbone}'s training "
                         f"or validation split: prepare with the seed and fractions the model recorded")
    if len(checked):
        text = (f"None of the test images of {', '.join(checked['dataset'])} was among {backbone}'s "
                f"pretraining images: the test split is the one the model held out.")
    else:
        text = f"{backbone} records no pretraining split for these datasets; nothing to check."
    glue("heldout-summary", text)
    return table
