"""Seeding every random source a run draws from; seeds, and a sampler, derived from (seed, epoch)."""
from __future__ import annotations

import random
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Sampler


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's global generators (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, stride: int = 100_003) -> int:
    """A seed of its own for each epoch: an epoch's draws depend on nothing that ran before it."""
    return seed * stride + epoch


class EpochSampler(Sampler[int]):
    """A fresh order each epoch from a generator seeded by (seed, epoch): resumable by construction.

    With ``weights`` it draws ``len`` indices with replacement in proportion to them (class balance).
    ``on_epoch(epoch)`` is called at every ``set_epoch`` (a dataset that draws per epoch, e.g. cached views).
    """

    def __init__(self, size: int, seed: int, weights: torch.Tensor | None = None,
                 on_epoch: Callable[[int], None] | None = None):
        self.size, self.seed, self.weights, self.epoch, self.on_epoch = size, seed, weights, 0, on_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.on_epoch is not None:
            self.on_epoch(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        if self.weights is None:
            return iter(torch.randperm(self.size, generator=g).tolist())
        return iter(torch.multinomial(self.weights, self.size, replacement=True, generator=g).tolist())
