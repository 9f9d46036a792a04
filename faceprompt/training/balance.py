"""The thesis's task-balanced training set: a task labelled by few rows is raised to a share of the data by
duplicating its rows, and only the duplicates are augmented (the originals are left as they are).

The rule (``TaskBalanceDataset`` in the thesis's ``dataset/dataset.py``): with ``N`` rows of which ``c`` are
labelled for the task and a target share ``f``, ``int((f * N - c) / (1 - f))`` rows are added, drawn with
replacement from the labelled ones, so that ``(c + added) / (N + added)`` reaches ``f``; nothing is added
when ``c / N >= f``. The thesis asks for emotion at a third of the data (``BALANCE_TASK: {"2": 0.33}``).

In a training run (``duplicates_of``, ``balanced_images``, ``balanced_features``) the duplicates are added as
images for methods that change the image path, each augmented afresh at every load as in the thesis; as cached
image features for those that do not, ``feature_views`` seeded views of each, one drawn per epoch. Separately,
``balanced_sample_weights`` gives draw weights for a sampler that balances classes across tasks whose labels
come from different datasets.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch.utils.data import Dataset

from faceprompt.backbones import Backbone
from faceprompt.data.dataset import FeatureDataset, ManifestDataset
from faceprompt.data.images import load_rgb
from faceprompt.engine.seeding import epoch_seed
from faceprompt.features import cached_features


def duplicates_needed(labelled: int, total: int, share: float) -> int:
    """How many labelled rows to add so that they make up ``share`` of ``total`` (the thesis's rounding down)."""
    if total == 0 or labelled == 0 or labelled / total >= share:
        return 0
    return max(int((share * total - labelled) / (1 - share)), 0)


def duplicate_rows(labels: torch.Tensor, tasks: Sequence[str], shares: Mapping[str, float],
                   seed: int) -> torch.Tensor:
    """Row indices to duplicate, task after task in ``shares`` order, each drawn with replacement from the
    rows labelled for it (a seeded generator). As in the thesis, the target of every task is reckoned on the
    original number of rows, and the rows (and duplicates) added for earlier tasks count and can be drawn."""
    total = len(labels)
    generator = torch.Generator().manual_seed(seed)
    index = torch.arange(total)
    for task, share in shares.items():
        pool = index[labels[index, list(tasks).index(task)] >= 0]
        count = duplicates_needed(len(pool), total, share)
        if count:
            index = torch.cat([index, pool[torch.randint(len(pool), (count,), generator=generator)]])
    return index[total:]


def thesis_augmentation(image_size: int | None = None) -> Callable:
    """The thesis's augmentation of duplicated faces (its ``get_augmentation_transform``), on PIL images
    before the backbone's normalisation: squashed to ``image_size`` square first (where given; the thesis
    blurs at the model's resolution), a horizontal flip half the time, brightness and contrast jittered by 0.15
    and saturation by 0.05, and half the time a 3 px Gaussian blur, sigma 0.1-0.8."""
    from torchvision import transforms as T

    return T.Compose([
        *([T.Resize((image_size, image_size))] if image_size else []),
        T.RandomHorizontalFlip(p=0.5),
        T.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.05),
        T.RandomApply([T.GaussianBlur(kernel_size=3, sigma=(0.1, 0.8))], p=0.5),
    ])


class DuplicateViews(Dataset):
    """Augmented views of some rows of a :class:`ManifestDataset`: item ``k`` is row ``rows[k]``'s image through
    ``augment`` and then the dataset's transform, with that row's labels.

    ``seed=None`` draws a new view at every load (the thesis's way); with a seed, view ``k`` is always the same
    one (drawn from ``seed + k``), which is what a cache of image features needs.
    """

    def __init__(self, base: ManifestDataset, rows: torch.Tensor, augment: Callable, seed: int | None = None):
        self.base, self.rows, self.augment, self.seed = base, rows.long(), augment, seed
        self.tasks = base.tasks
        self.labels = base.labels[self.rows]
        self.paths = [base.paths[int(r)] for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def view(self, k: int):
        image = load_rgb(self.paths[k])
        if self.seed is None:
            image = self.augment(image)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed + k)
                image = self.augment(image)
        return image if self.base.transform is None else self.base.transform(image)

    def __getitem__(self, k: int):
        return self.view(k), {t: self.labels[k, j] for j, t in enumerate(self.tasks)}


class TaskBalancedDataset(Dataset):
    """The original rows (returned exactly as ``base`` returns them), then the augmented duplicates.

    ``labels`` is the [N + D, T] label matrix in that order, so class weights, the sampler and the task
    weights all see the balanced data, as the thesis's do."""

    def __init__(self, base: ManifestDataset, duplicates: DuplicateViews):
        self.base, self.duplicates, self.tasks = base, duplicates, base.tasks
        self.labels = torch.cat([base.labels, duplicates.labels])

    def __len__(self) -> int:
        return len(self.base) + len(self.duplicates)

    def is_duplicate(self, index: int) -> bool:
        return index >= len(self.base)

    def __getitem__(self, index: int):
        if index < len(self.base):
            return self.base[index]
        return self.duplicates[index - len(self.base)]

    def labelled_counts(self) -> dict[str, int]:
        return {t: int((self.labels[:, j] >= 0).sum()) for j, t in enumerate(self.tasks)}


# --- task_balance in a training run -------------------------------------------------------------------

def _augmentation(kind: str, image_size: int | None = None):
    return thesis_augmentation(image_size) if kind == "thesis" else (lambda image: image)


def duplicates_of(cfg, train: ManifestDataset) -> torch.Tensor:
    """The rows ``cfg.task_balance`` duplicates (none when it is empty)."""
    if not cfg.task_balance:
        return torch.zeros(0, dtype=torch.long)
    return duplicate_rows(train.labels, train.tasks, cfg.task_balance, cfg.seed)


def balanced_images(cfg, train: ManifestDataset, rows: torch.Tensor,
                    image_size: int | None = None) -> ManifestDataset | TaskBalancedDataset:
    """The originals, then the duplicates, each augmented afresh whenever it is loaded (as the thesis does)."""
    if not len(rows):
        return train
    return TaskBalancedDataset(train, DuplicateViews(train, rows, _augmentation(cfg.task_balance_augment, image_size)))


class DrawnViewFeatures(FeatureDataset):
    """Cached features of the originals, then of the ``D`` duplicates: duplicate ``k`` is one of its ``K`` cached
    views ``views[:, k]``, a new one drawn for every epoch by ``set_epoch`` from (``seed``, epoch)."""

    def __init__(self, originals: torch.Tensor, views: torch.Tensor, labels: torch.Tensor, tasks, seed: int):
        super().__init__(torch.cat([originals, views[0]]), labels, tasks)
        self.originals, self.views, self.seed = originals, views, seed
        self.drawn = torch.zeros(views.shape[1], dtype=torch.long)

    def set_epoch(self, epoch: int) -> None:
        # its own stream: the sampler's generator is seeded by epoch_seed(seed, epoch) itself
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch) + 1)
        self.drawn = torch.randint(self.views.shape[0], (self.views.shape[1],), generator=generator)

    def __getitem__(self, index: int):
        n = len(self.originals)
        feature = self.originals[index] if index < n else self.views[self.drawn[index - n], index - n]
        return feature, {t: self.labels[index, j] for j, t in enumerate(self.tasks)}


def balanced_features(cfg, train: ManifestDataset, features: torch.Tensor, rows: torch.Tensor, backbone: Backbone,
                      dtype: torch.dtype, progress: bool) -> FeatureDataset:
    """Cached features of the originals, then of the duplicates. Cached features cannot change from epoch to
    epoch as the thesis's re-augmented images do: each duplicate has ``cfg.feature_views`` augmented views drawn
    once from ``cfg.seed`` (and cached under it), and an epoch sees one of them (1: the same view every epoch);
    without augmentation a duplicate is its original's features."""
    labels = torch.cat([train.labels, train.labels[rows]])
    if cfg.task_balance_augment == "none" or not len(rows):
        return FeatureDataset(torch.cat([features, features[rows]]), labels, train.tasks)
    count = cfg.feature_views
    # view v of duplicate k is drawn from seed + v * D + k: view 0 is the one a single view always was
    views = DuplicateViews(train, rows.repeat(count), _augmentation(cfg.task_balance_augment, backbone.image_size),
                           seed=cfg.seed)
    variant = f"task_balance:{cfg.task_balance_augment}:{cfg.seed}:{repr(views.augment)}"
    extra = cached_features(backbone, views, cfg.cache_dir, cfg.batch_size, cfg.num_workers, dtype, progress,
                            variant=variant)
    if count == 1:
        return FeatureDataset(torch.cat([features, extra]), labels, train.tasks)
    return DrawnViewFeatures(features, extra.reshape(count, len(rows), -1), labels, train.tasks, cfg.seed)


# --- class-balanced draws ------------------------------------------------------------------------------

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


def age_gender_sample_weights(labels: torch.Tensor, gender: int, age: int, power: float) -> torch.Tensor:
    """Per-sample draw weight ~ (faces of its gender x age bin) ** -power, scaled to mean 1 over the samples
    with both labels; 1 for the others (another dataset's share of the draws stays as it was)."""
    has = (labels[:, gender] >= 0) & (labels[:, age] >= 0)
    weights = torch.ones(len(labels))
    if has.any():
        groups = labels[has, gender] * (int(labels[:, age].max()) + 1) + labels[has, age]
        per_sample = torch.bincount(groups).float()[groups] ** -float(power)
        weights[has] = per_sample / per_sample.mean()
    return weights
