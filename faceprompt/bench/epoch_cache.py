"""Time one training epoch of a text method with and without cached image features."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from faceprompt.backbones import Backbone
from faceprompt.bench.timing import load_tower, parse_method_spec, time_once
from faceprompt.prompts import build_model
from faceprompt.training.losses import multitask_loss


@dataclass(frozen=True)
class EpochCacheResult:
    method: str
    backbone: str
    device: str
    images: int
    batch_size: int
    epoch_without_cache_s: float  # every step runs the vision tower
    cache_build_s: float  # one pass of the vision tower over all images (paid once)
    epoch_with_cache_s: float  # steps run on cached features
    speedup: float  # without / with


def bench_epoch_cache(backbone: str | Backbone, method: str = "softcpt", images: int = 512,
                      batch_size: int | Sequence[int] = 32, device: str = "cpu", weights: str | None = "random",
                      lr: float = 2e-3, seed: int = 0, stand_in_tokenizer: bool = False
                      ) -> EpochCacheResult | list[EpochCacheResult]:
    """Time one AdamW epoch of a frozen-image-path method over random images, both ways.

    Images are random tensors already in memory, which favours the uncached epoch (no decoding):
    the measured speed-up is a lower bound of what a real manifest sees. A cached epoch still runs
    the text tower, with gradients, over every class prompt once per step, so the speed-up is about
    1 + batch_size * t_image / t_text_step: it grows with the batch size, not with the epoch length.
    Several batch sizes share one cache build; a list in gives a list out.
    """
    sizes = [batch_size] if isinstance(batch_size, int) else list(batch_size)
    name, options = parse_method_spec(method)
    tower = load_tower(backbone, weights, device, stand_in_tokenizer)
    torch.manual_seed(seed)
    model = build_model(name, tower, None, options)
    if not model.caches_image_features:
        raise ValueError(f"--methods: {method!r} changes the image path; its image features can't be cached")
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(images, 3, tower.image_size, tower.image_size, generator=g)
    labels = {t.name: torch.randint(0, t.num_classes, (images,), generator=g) for t in model.tasks}
    dev = tower.device

    def epoch(inputs: torch.Tensor, on_features: bool, size: int) -> None:
        model.load_state_dict(initial)  # every epoch starts from the same prompts
        model.train()
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=lr)
        for start in range(0, images, size):
            x = inputs[start:start + size].to(dev)
            out = model.forward_features(x) if on_features else model(x)
            targets = {t: y[start:start + size].to(dev) for t, y in labels.items()}
            loss = multitask_loss(out.logits, targets).total
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    features: list[torch.Tensor] = []

    def build_cache() -> None:
        with torch.no_grad():
            for start in range(0, images, max(sizes)):
                features.append(tower.encode_image(pixels[start:start + max(sizes)].to(dev)))

    build = time_once(build_cache, dev)
    cached = torch.cat(features)
    results = []
    for size in sizes:
        without = time_once(lambda: epoch(pixels, False, size), dev)
        with_cache = time_once(lambda: epoch(cached, True, size), dev)
        results.append(EpochCacheResult(method, tower.name, str(dev), images, size, without, build, with_cache,
                                        without / with_cache))
    return results[0] if isinstance(batch_size, int) else results

