"""The embedded synthetic faces as a dataset: generated into ``root`` on first use, then read back."""
from __future__ import annotations

from pathlib import Path

from faceprompt.data.adapters.base import ScanResult
from faceprompt.data.manifest import read_manifest
from faceprompt.data.synthetic_faces import make_synthetic_dataset

NAME = "synthetic"
DETECT_BY_DEFAULT = False  # drawn centred, nothing to detect


def scan(root, n: int = 1500, image_size: int = 128, seed: int = 0, **_) -> ScanResult:
    root = Path(root)
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        make_synthetic_dataset(root, n=n, size=image_size, seed=seed)
    frame = read_manifest(manifest)
    result = ScanResult()
    for row in frame.to_dict("records"):
        if not Path(row["path"]).is_file():
            result.skip(row["path"], f"missing image file (named in {manifest})")
            continue
        result.rows.append(row)  # the generator's split is the official one
    return result
