"""Robust image loading: any file a dataset ships becomes an upright 8-bit RGB image, or a clear error.

Datasets downloaded from the web hold grayscale JPEGs, CMYK JPEGs, palette and RGBA PNGs, 16-bit PNGs,
phone photos rotated by an EXIF tag, and the odd truncated file. ``load_rgb`` hides all of that behind
one call so the detector, the training loader and the demo see the same pixels.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from faceprompt.io import check_is_file

# 50 megapixels: far above any face dataset (CelebA-HQ is 1 MP), far below a decompression bomb.
DEFAULT_MAX_PIXELS = 50_000_000
# Background used when flattening transparency: white, as a viewer would show it.
_BACKGROUND = (255, 255, 255)
# Shortest side, in pixels, of an image that can show a face: the detectors find none smaller than 20 px.
# Below it a classifier still answers (a 1x1 image comes out "99% male"), so such files are refused.
MIN_FACE_SIZE = 16


class ImageLoadError(ValueError):
    """An image file that can't be turned into RGB pixels; the message names the file and the reason."""


def load_rgb(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an upright RGB ``PIL.Image`` with 8 bits per channel.

    - EXIF orientation is applied (the pixels are rotated, the tag dropped);
    - grayscale, palette, CMYK, RGBA/LA (flattened on white) and 16/32-bit images become RGB uint8;
    - more than ``max_pixels`` pixels (None: no limit) raises ImageLoadError before decoding;
    - a missing file raises FileNotFoundError; a corrupt or truncated file raises ImageLoadError.
    """
    path = Path(path)
    check_is_file(path, ImageLoadError(f"{path}: is a folder, not an image file"),
                  FileNotFoundError(f"{path}: no such image file"))
    try:
        with Image.open(path) as img:
            _check_size(img, path, max_pixels)
            with warnings.catch_warnings():
                # Pillow warns (not raises) on some broken EXIF blocks; the pixels are still fine.
                warnings.simplefilter("ignore")
                img.load()  # decode now, inside the try: a truncated file fails here
                img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageLoadError(f"{path}: unreadable image ({type(err).__name__}: {err})") from None


def load_face(path: str | os.PathLike, min_size: int = MIN_FACE_SIZE) -> Image.Image:
    """``load_rgb`` for a face crop: an image whose shortest side is under ``min_size`` raises ImageLoadError."""
    image = load_rgb(path)
    check_face_size(image.size, path, min_size)
    return image


def check_face_size(size: tuple[int, int], path: str | os.PathLike, min_size: int = MIN_FACE_SIZE) -> None:
    if min(size) < min_size:
        raise ImageLoadError(f"{path}: {size[0]}x{size[1]} pixels is too small to show a face "
                             f"(at least {min_size}x{min_size} needed)")


def check_face_files(paths: list[str], min_size: int = MIN_FACE_SIZE, where: str = "manifest") -> None:
    """Before a long run: every path is an image file (header only, nothing decoded) big enough for a face."""
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{where}: image {path} does not exist")
        try:
            with Image.open(path) as img:
                size = img.size
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise ImageLoadError(f"{where}: {path}: unreadable image ({type(err).__name__}: {err})") from None
        try:
            _check_size(img, Path(path), DEFAULT_MAX_PIXELS)  # what load_rgb refuses, refused now
            check_face_size(size, path, min_size)
        except ImageLoadError as err:
            raise ImageLoadError(f"{where}: {err}") from None


def _check_size(img: Image.Image, path: Path, max_pixels: int | None) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"{path}: empty image ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            f"{path}: {width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,} "
            "(pass max_pixels=None to lift it)"
        )


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert an image of any Pillow mode to RGB with 8 bits per channel."""
    mode = img.mode
    if mode == "RGB":
        return img.copy() if img.readonly else img
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_depth_to_rgb(img)
    # L, 1, P, CMYK, YCbCr, LAB, HSV: Pillow's own conversion is correct for these.
    return img.convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit (or 32-bit int / float) single-channel images: scale the real range to 0..255.

    Why not ``convert("L")``: Pillow clips 16-bit values at 255, which turns most 16-bit photos white.
    """
    arr = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        low, high = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - low) / (high - low) * 255.0 if high > low else np.zeros_like(arr)
    else:
        # A 16-bit file uses 0..65535 whatever its content; 32-bit ints that fit 8 bits stay as they are.
        full_scale = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        scaled = arr * (255.0 / full_scale)
    gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


def load_rgb_array(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``load_rgb`` as an ``H x W x 3`` uint8 numpy array (what detectors take)."""
    return np.asarray(load_rgb(path, max_pixels=max_pixels), dtype=np.uint8)
