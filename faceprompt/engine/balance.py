"""``task_balance`` in a training run: the thesis's duplicated (and augmented) rows added to the training set,
as images for methods that change the image path, as cached image features for those that do not."""
from __future__ import annotations

import torch

from faceprompt.backbones import Backbone
from faceprompt.data.dataset import FeatureDataset, ManifestDataset
from faceprompt.data.task_balance import DuplicateViews, TaskBalancedDataset, duplicate_rows, thesis_augmentation
from faceprompt.features import cached_features


def _augmentation(kind: str):
    return thesis_augmentation() if kind == "thesis" else (lambda image: image)


def duplicates_of(cfg, train: ManifestDataset) -> torch.Tensor:
    """The rows ``cfg.task_balance`` duplicates (none when it is empty)."""
    if not cfg.task_balance:
        return torch.zeros(0, dtype=torch.long)
    return duplicate_rows(train.labels, train.tasks, cfg.task_balance, cfg.seed)


def balanced_images(cfg, train: ManifestDataset, rows: torch.Tensor) -> ManifestDataset | TaskBalancedDataset:
    """The originals, then the duplicates, each augmented afresh whenever it is loaded (as the thesis does)."""
    if not len(rows):
        return train
    return TaskBalancedDataset(train, DuplicateViews(train, rows, _augmentation(cfg.task_balance_augment)))


def balanced_features(cfg, train: ManifestDataset, features: torch.Tensor, rows: torch.Tensor, backbone: Backbone,
                      dtype: torch.dtype, progress: bool) -> FeatureDataset:
    """Cached features of the originals, then of the duplicates. Cached features cannot change from epoch to
    epoch, so each duplicate is one augmented view drawn once from ``cfg.seed`` (and cached under it); without
    augmentation a duplicate is its original's features."""
    labels = torch.cat([train.labels, train.labels[rows]])
    if cfg.task_balance_augment == "none" or not len(rows):
        return FeatureDataset(torch.cat([features, features[rows]]), labels, train.tasks)
    views = DuplicateViews(train, rows, _augmentation(cfg.task_balance_augment), seed=cfg.seed)
    variant = f"task_balance:{cfg.task_balance_augment}:{cfg.seed}:{repr(views.augment)}"
    extra = cached_features(backbone, views, cfg.cache_dir, cfg.batch_size, cfg.num_workers, dtype, progress,
                            variant=variant)
    return FeatureDataset(torch.cat([features, extra]), labels, train.tasks)
