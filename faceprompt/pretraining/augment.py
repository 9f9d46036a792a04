"""Batched augmentation on uint8 images, every draw from one CPU generator (same seed, same batch, any device).

Geometry first (one ``grid_sample``: resized crop, shift, rotation, flip), then what a camera and the web do
to a photo: colour jitter, white balance, grayscale, blur, JPEG compression. A step whose probability is 0
draws nothing, so a recipe written before it existed draws (and trains) exactly as it did.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MEAN = STD = (0.5, 0.5, 0.5)  # PE-Core's normalisation
_LUMA = (0.299, 0.587, 0.114)


def normalize(images_u8: torch.Tensor) -> torch.Tensor:
    return (images_u8.float() / 255.0 - 0.5) / 0.5


@dataclass(frozen=True)
class Augmentation:
    """Each change's probability per image and its strength (the pretraining config's fields of the same names)."""

    crop_scale: tuple[float, float] = (0.75, 1.0)  # crop area as a share of the image
    flip_p: float = 0.5
    grayscale_p: float = 0.2
    color_p: float = 0.0  # brightness, contrast and saturation, each a factor in [1 - s, 1 + s]
    color_strength: float = 0.0
    white_balance_p: float = 0.0  # a gain per channel in [1 - s, 1 + s]
    white_balance_strength: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.2)  # pixels
    jpeg_p: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 90)
    rotate_p: float = 0.0
    rotate_degrees: float = 0.0
    shift: float = 0.0  # extra translation as a share of the side, in [-s, s]

    @classmethod
    def from_config(cls, cfg) -> "Augmentation":
        return cls(**{name: getattr(cfg, name) for name in cls.__dataclass_fields__})


def _uniform(low: float, high: float, n: int, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _chosen(p: float, n: int, gen: torch.Generator) -> torch.Tensor | None:
    """Which images a step applies to (None, and no draw, when its probability is 0)."""
    return torch.rand(n, generator=gen) < p if p > 0 else None


def _affine(b: int, gen: torch.Generator, aug: Augmentation) -> torch.Tensor:
    """[B, 2, 3] output -> input sampling grids: scale, shift, flip, then optional rotation and extra shift."""
    lo, hi = aug.crop_scale
    side = torch.sqrt(_uniform(lo, hi, b, gen))  # crop side as a fraction of the image
    shift = (1 - side).unsqueeze(1) * (2 * torch.rand(b, 2, generator=gen) - 1)  # keep the crop inside the image
    flip = torch.where(torch.rand(b, generator=gen) < aug.flip_p, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = side * flip
    theta[:, 1, 1] = side
    theta[:, :, 2] = shift
    rotate = _chosen(aug.rotate_p, b, gen)
    if rotate is not None:
        angle = torch.deg2rad(_uniform(-aug.rotate_degrees, aug.rotate_degrees, b, gen)) * rotate
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        theta[:, :, :2] = rotation @ theta[:, :, :2]
    if aug.shift > 0:
        theta[:, :, 2] += 2 * aug.shift * (2 * torch.rand(b, 2, generator=gen) - 1)  # grid units span 2
    return theta


def _luma(x: torch.Tensor) -> torch.Tensor:
    return (_LUMA[0] * x[:, 0] + _LUMA[1] * x[:, 1] + _LUMA[2] * x[:, 2]).unsqueeze(1)


def _per_image(values: torch.Tensor, chosen: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Factors [B] (1 where not chosen) shaped to broadcast over [B, C, H, W] on x's device."""
    return torch.where(chosen, values, torch.ones_like(values)).to(x.device).view(-1, 1, 1, 1)


def color_jitter(x: torch.Tensor, gen: torch.Generator, p: float, strength: float) -> torch.Tensor:
    """Brightness, contrast and saturation of images in [0, 1], each by a factor in [1 - s, 1 + s]."""
    b = x.shape[0]
    chosen = _chosen(p, b, gen)
    if chosen is None:
        return x
    brightness, contrast, saturation = (_per_image(_uniform(1 - strength, 1 + strength, b, gen), chosen, x)
                                        for _ in range(3))
    x = x * brightness
    mean = _luma(x).mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    gray = _luma(x)
    return ((x - gray) * saturation + gray).clamp(0, 1)


def white_balance(x: torch.Tensor, gen: torch.Generator, p: float, strength: float) -> torch.Tensor:
    """A gain per colour channel in [1 - s, 1 + s]: the tint of a light source or a camera's guess of it."""
    b = x.shape[0]
    chosen = _chosen(p, b, gen)
    if chosen is None:
        return x
    gains = _uniform(1 - strength, 1 + strength, 3 * b, gen).view(b, 3)
    gains = torch.where(chosen.unsqueeze(1), gains, torch.ones_like(gains)).to(x.device)
    return (x * gains.view(b, 3, 1, 1)).clamp(0, 1)


def grayscale(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    gray = (torch.rand(x.shape[0], generator=gen) < p).to(x.device)
    if gray.any():
        x = x.clone()
        x[gray] = _luma(x[gray]).expand(-1, 3, -1, -1)
    return x


def blur(x: torch.Tensor, gen: torch.Generator, p: float, sigma: tuple[float, float]) -> torch.Tensor:
    """Gaussian blur with a sigma per image: one separable depthwise convolution for the whole batch."""
    b, c, h, w = x.shape
    chosen = _chosen(p, b, gen)
    if chosen is None:
        return x
    sigmas = _uniform(sigma[0], sigma[1], b, gen)
    if not chosen.any():
        return x
    radius = math.ceil(3 * sigma[1])
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernels = torch.exp(-0.5 * (offsets / sigmas.unsqueeze(1)) ** 2)
    kernels = kernels / kernels.sum(1, keepdim=True)
    kernels = kernels[chosen].repeat_interleave(c, 0).to(x.device)  # [n*C, K]
    part = x[chosen.to(x.device)].reshape(1, -1, h, w)
    groups = part.shape[1]
    part = F.pad(part, (radius, radius, radius, radius), mode="reflect" if radius < min(h, w) else "replicate")
    part = F.conv2d(part, kernels.view(groups, 1, 1, -1), groups=groups)
    part = F.conv2d(part, kernels.view(groups, 1, -1, 1), groups=groups)
    x = x.clone()
    x[chosen.to(x.device)] = part.view(-1, c, h, w)
    return x


def jpeg(x: torch.Tensor, gen: torch.Generator, p: float, quality: tuple[int, int]) -> torch.Tensor:
    """Re-encode chosen images as JPEG at a drawn quality (a real encoder: its blocks and ringing are the
    point; at these sizes it costs well under a millisecond an image)."""
    from PIL import Image

    b = x.shape[0]
    chosen = _chosen(p, b, gen)
    if chosen is None:
        return x
    qualities = torch.randint(quality[0], quality[1] + 1, (b,), generator=gen)
    if not chosen.any():
        return x
    x = x.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        pixels = (x[i].clamp(0, 1) * 255).round().to("cpu", torch.uint8).permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(qualities[i]))
        decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.uint8)
        x[i] = torch.from_numpy(decoded.copy()).permute(2, 0, 1).to(x.device, torch.float32) / 255.0
    return x


def augment(images_u8: torch.Tensor, gen: torch.Generator, aug: Augmentation = Augmentation()) -> torch.Tensor:
    """Augmented, normalised float images. The draws come from ``gen`` on the CPU whatever the images' device."""
    x = normalize(images_u8)
    grid = F.affine_grid(_affine(x.shape[0], gen, aug).to(x.device), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    photometric = (aug.color_p, aug.white_balance_p, aug.blur_p, aug.jpeg_p)
    if not any(photometric):
        return grayscale(x, gen, aug.grayscale_p)  # the original recipe's path, bit for bit
    x = x * 0.5 + 0.5
    x = color_jitter(x, gen, aug.color_p, aug.color_strength)
    x = white_balance(x, gen, aug.white_balance_p, aug.white_balance_strength)
    x = grayscale(x, gen, aug.grayscale_p)  # after the colour changes: a gray photo stays gray
    x = blur(x, gen, aug.blur_p, aug.blur_sigma)
    x = jpeg(x, gen, aug.jpeg_p, aug.jpeg_quality)
    return (x - 0.5) / 0.5
