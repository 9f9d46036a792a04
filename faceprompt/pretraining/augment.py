"""Batched augmentation on uint8 images: random resized crop, flip and grayscale, drawn from one generator."""
from __future__ import annotations

import torch
import torch.nn.functional as F

MEAN = STD = (0.5, 0.5, 0.5)  # PE-Core's normalisation


def normalize(images_u8: torch.Tensor) -> torch.Tensor:
    return (images_u8.float() / 255.0 - 0.5) / 0.5


def augment(images_u8: torch.Tensor, gen: torch.Generator, crop_scale: tuple[float, float] = (0.75, 1.0),
            grayscale_p: float = 0.2) -> torch.Tensor:
    """Random resized square crop + horizontal flip + occasional grayscale, batched with one grid_sample."""
    b = images_u8.shape[0]
    x = normalize(images_u8)
    # The random draws come from ``gen`` on the CPU whatever the images' device: same seed, same crops.
    lo, hi = crop_scale
    side = torch.sqrt(lo + (hi - lo) * torch.rand(b, generator=gen))  # crop side as a fraction of the image
    shift = (1 - side).unsqueeze(1) * (2 * torch.rand(b, 2, generator=gen) - 1)  # keep the crop inside the image
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = side * flip
    theta[:, 1, 1] = side
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gray = (torch.rand(b, generator=gen) < grayscale_p).to(x.device)
    if gray.any():
        luma = (0.299 * x[gray, 0] + 0.587 * x[gray, 1] + 0.114 * x[gray, 2]).unsqueeze(1)
        x[gray] = luma.expand(-1, 3, -1, -1)
    return x
