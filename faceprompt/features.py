"""Frozen image features, computed once and reused from disk.

Methods that leave the image path untouched (zero-shot, CoOp, SoftCPT: ``model.caches_image_features``)
see the same image features every epoch, so they are computed once per
(images, backbone, weights, preprocessing, dtype) and stored as
``<cache_dir>/<key>.safetensors``. The key hashes the image paths with each file's size and
modification time, the backbone name, its ``weights_id``, the preprocessing pipeline's repr and the
compute dtype: change any of them and a new file is made, never a stale one reused.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from faceprompt.backbones import Backbone
from faceprompt.data.dataset import ManifestDataset
from faceprompt.io import atomic_path

log = logging.getLogger(__name__)


def _file_signature(path: str) -> list:
    try:
        stat = os.stat(path)
        return [path, stat.st_size, stat.st_mtime_ns]
    except FileNotFoundError:
        return [path, None, None]  # load_rgb reports the missing file when features are computed


def feature_cache_key(paths: list[str], backbone: Backbone, dtype: torch.dtype = torch.float32,
                      variant: str = "") -> str:
    """A hash of what decides the features: the image files, backbone, weights, preprocessing, dtype, and
    ``variant``, which names anything done to the images before the preprocessing (e.g. a seeded augmentation)."""
    h = hashlib.sha256()
    header = {"backbone": backbone.name, "weights": backbone.weights_id,
              "preprocess": repr(backbone.preprocess), "dtype": str(dtype), "version": 1}
    if variant:
        header["variant"] = variant
    h.update(json.dumps(header, sort_keys=True).encode())
    for path in paths:
        h.update(json.dumps(_file_signature(path)).encode())
    return h.hexdigest()[:24]


def _autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def compute_features(backbone: Backbone, dataset: ManifestDataset, batch_size: int = 64, num_workers: int = 0,
                     dtype: torch.dtype = torch.float32, progress: bool = True) -> torch.Tensor:
    """Frozen image features [N, E] (float32, on CPU), in dataset order."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    device = backbone.device
    chunks = []
    for images, _ in tqdm(loader, desc="image features", disable=not progress, leave=False):
        with _autocast(device, dtype):
            chunks.append(backbone.encode_image(images.to(device)).float().cpu())
    if not chunks:
        return torch.zeros(0, backbone.embed_dim)
    return torch.cat(chunks)


def cached_features(backbone: Backbone, dataset: ManifestDataset, cache_dir: str | os.PathLike | None,
                    batch_size: int = 64, num_workers: int = 0, dtype: torch.dtype = torch.float32,
                    progress: bool = True, variant: str = "") -> torch.Tensor:
    """Features from ``cache_dir`` when present, else computed and written there atomically.

    ``cache_dir=None`` computes without caching. ``variant``: see :func:`feature_cache_key`.
    """
    if cache_dir is None:
        return compute_features(backbone, dataset, batch_size, num_workers, dtype, progress)
    path = Path(cache_dir) / f"{feature_cache_key(dataset.paths, backbone, dtype, variant)}.safetensors"
    if path.is_file():
        features = load_file(str(path))["features"]
        if len(features) == len(dataset):
            log.info("image features from %s", path)
            return features
        log.warning("%s holds %d rows, the dataset %d: recomputing", path, len(features), len(dataset))
    features = compute_features(backbone, dataset, batch_size, num_workers, dtype, progress)
    with atomic_path(path) as tmp:
        save_file({"features": features.contiguous()}, str(tmp))
    log.info("image features cached at %s", path)
    return features
