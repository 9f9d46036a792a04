"""The image cache: every image decoded and resized once into one uint8 tensor file, so an epoch reads memory.

The file is safetensors (the pixels) with the image paths as JSON in its header; nothing is unpickled. A
cache for other images is rebuilt; an unreadable one is an error naming the file (delete it to rebuild).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from faceprompt.engine.state import read_tensor_file, write_tensor_file

log = logging.getLogger(__name__)

_PATHS_KEY = "paths"


class ImageCacheError(ValueError):
    """An image cache file that cannot be read."""


def load_face(path: str, size: int, crop: str = "center") -> np.ndarray:
    """The face in the image at ``path`` as uint8 [3, size, size]: every image pretraining reads comes
    through here. ``center``: the centre square; ``aligned``: :func:`faceprompt.align.face_crop` of the
    whole image as one face, the crop predict and the demo use (the box crop where landmarks fail)."""
    from PIL import Image

    from faceprompt.data.images import load_rgb

    image = load_rgb(path)
    if crop == "aligned":
        from faceprompt.align import face_crop

        image = face_crop(image, None, size=size, mode="aligned").image
    else:
        side = min(image.size)  # centre square (the datasets' faces are already square crops)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


def _decode(args: tuple[str, int, str]) -> np.ndarray:
    if args[2] == "aligned":
        torch.set_num_threads(1)  # the landmark network in each worker: one thread apiece, not oversubscribed
    return load_face(*args)


def read_image_cache(path: Path) -> tuple[list[str], torch.Tensor]:
    """(paths, images) stored at ``path``; an unreadable file is one ImageCacheError saying what to do."""
    tensors, paths = read_tensor_file(path, _PATHS_KEY, "image cache", "delete it and run again to rebuild it",
                                      ImageCacheError)
    if "images" not in tensors or not isinstance(paths, list):
        raise ImageCacheError(f"{path}: not an image cache; delete it and run again to rebuild it")
    return paths, tensors["images"]


def write_image_cache(path: Path, paths: Sequence[str], images: torch.Tensor) -> None:
    write_tensor_file(path, {"images": images.contiguous()}, [str(p) for p in paths], _PATHS_KEY)


def build_image_cache(paths: Sequence[str], size: int, path: Path, workers: int = 2,
                      crop: str = "center") -> torch.Tensor:
    """Decode + resize every image once into a uint8 [N, 3, S, S] tensor stored at ``path`` (reused if there)."""
    if path.is_file():
        cached_paths, images = read_image_cache(path)
        if cached_paths == [str(p) for p in paths] and images.shape[-1] == size:
            return images
        log.info("image cache %s is for other images: rebuilding", path)
    import multiprocessing as mp

    from tqdm import tqdm

    jobs = [(str(p), size, crop) for p in paths]
    start = time.perf_counter()
    with mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn").Pool(workers) as pool:
        arrays = list(tqdm(pool.imap(_decode, jobs, chunksize=64), total=len(jobs), desc="decoding", unit="img"))
    images = torch.from_numpy(np.stack(arrays))
    write_image_cache(path, paths, images)
    log.info("cached %d images at %d px in %.0f s -> %s", len(paths), size, time.perf_counter() - start, path)
    return images
