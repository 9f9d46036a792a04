"""Draw weights for a sampler that balances classes across tasks whose labels come from different datasets."""
from __future__ import annotations

from typing import Sequence

import torch


def balanced_sample_weights(labels: torch.Tensor, columns: list[int] | None = None,
                            power: float | Sequence[float] = 1.0) -> torch.Tensor:
    """Per-sample draw weight: the mean over its labelled (balanced) tasks of (size of its class) ** -power,
    scaled to mean 1 over the samples labelled for that task; 1 for a sample with none of those labels, so
    balancing one dataset's task leaves the other datasets' share of the draws as it was.

    ``power`` is one number, or one per entry of ``columns`` (per label column when ``columns`` is None).
    """
    columns = list(range(labels.shape[1])) if columns is None else list(columns)
    powers = [float(power)] * len(columns) if isinstance(power, (int, float)) else [float(p) for p in power]
    if len(powers) != len(columns):
        raise ValueError(f"power: {len(powers)} values for {len(columns)} balanced columns")
    total = torch.zeros(len(labels))
    count = torch.zeros(len(labels))
    for j, column_power in zip(columns, powers):
        column = labels[:, j]
        has = column >= 0
        if has.any():
            freq = torch.bincount(column[has]).float()
            per_sample = freq[column[has]] ** -column_power
            total[has] += per_sample / per_sample.mean()
            count[has] += 1
    return torch.where(count > 0, total / count.clamp(min=1), torch.ones_like(total))
