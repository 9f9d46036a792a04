"""The held-out check: no test image of a run may be among a pretrained model's training images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from faceprompt.book._machinery.glue import glue

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


def model_roles(backbone: str, pretrained_dir: str | Path = PRETRAINED_DIR) -> dict | None:
    """``recipe.json``'s ``roles`` of an embedded model: the labels its pretraining read per dataset and the
    ``dataset:task`` labels it left for prompt tuning; None for a backbone without a record."""
    import json

    path = Path(pretrained_dir) / backbone / "recipe.json"
    return json.loads(path.read_text()).get("roles") if path.is_file() else None


def adaptation_check(backbone: str, target: dict, roles: dict | None = None) -> str:
    """The held-out target's labels must not have reached the backbone's pretraining: raises if its recipe
    read that task of that dataset; says so when the target is not the one the recipe held out (a dataset the
    model never saw at all, such as synthetic faces). Glued as ``adaptation-summary``."""
    roles = model_roles(backbone) if roles is None else roles
    dataset, task = target["dataset"], target["task"]
    if roles is None:
        text = f"{backbone} records no pretraining roles; the target {dataset} {task} is not checked."
    else:
        read = roles.get("pretraining_labels", {}).get(dataset, [])
        if task in read:
            raise ValueError(f"{backbone}'s pretraining read {dataset}'s {task} labels: {dataset} {task} is "
                             f"not held out (recipe.json roles: {roles})")
        seen = f"its images with {', '.join(read)} only" if read else "none of its images"
        if f"{dataset}:{task}" not in roles.get("adaptation_labels", []):
            seen += f"; {dataset} is not the target the recipe held out, {roles.get('adaptation_labels')}"
        text = (f"{backbone}'s pretraining never read any {task} label of {dataset} ({seen}): prompt tuning "
                f"adapts it to labels it never saw, as the thesis adapts SigLIP2 and PE-Core.")
    glue("adaptation-summary", text)
    return text
