"""Training throughput: images per second, achieved TFLOP/s and peak memory of one training step per method.

A step is what ``faceprompt train`` does per batch on images (not cached features): the method's forward in
train mode under the given autocast dtype, the multitask loss, backward, and an AdamW step over the method's
parameters. The reference row ``tower`` is the bare frozen vision tower's forward and backward with the
gradient taken with respect to its input: the same backward through every block that a visual prompt needs,
with no method around it, so ``vs_tower`` is a method's overhead on the tower's own cost. FLOPs are PyTorch's
count (``FlopCounterMode``) of one step, backward included. Peak memory is ``torch.cuda.max_memory_allocated``
on a GPU; on a CPU only the process's peak resident set is known (``resource.getrusage``), which covers
everything run so far, not one method.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from faceprompt.backbones import Backbone
from faceprompt.bench.timing import (DTYPES, TimedRow, achieved, autocast, check_bench_options, count_gflops,
                                     frame_text, load_tower, parse_method_spec, peak_tflops, time_once, warm_up)
from faceprompt.prompts import build_model
from faceprompt.training.losses import multitask_loss

TOWER = "tower"  # the reference row's name


@dataclass(frozen=True)
class TrainRow(TimedRow):
    """One method (or the bare tower) at one batch size; times are per training step."""

    images_per_s: float
    vs_tower: float  # median / the bare tower's forward-backward median at this batch size
    gflops_per_image: float  # forward and backward
    tflops: float | None
    peak_share: float | None
    peak_memory_mb: float | None  # CUDA: this method's step; None on a CPU
    peak_rss_mb: float | None  # CPU: the process's peak resident set so far
    compile: str = "off"


def peak_rss_mb() -> float | None:
    """The process's peak resident set in MiB (Linux and macOS), or None where ``resource`` is missing."""
    try:
        import resource
        import sys
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _method_step(model, images: torch.Tensor, labels: dict, optimizer, device, dtype) -> Callable[[], None]:
    def step() -> None:
        with autocast(device, dtype):
            loss = multitask_loss(model(images).logits, labels).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def _tower_step(tower: Backbone, images: torch.Tensor, device, dtype) -> Callable[[], None]:
    def step() -> None:
        pixels = images.detach().requires_grad_(True)
        with autocast(device, dtype):
            features = tower.encode_image(pixels)
        features.float().square().mean().backward()
    return step


def _steps(tower: Backbone, specs: list[str], batch: int, tasks, seed: int, dtype: torch.dtype
           ) -> dict[str, Callable[[], None]]:
    dev = tower.device
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, tower.image_size, tower.image_size, generator=g).to(dev)
    steps = {TOWER: _tower_step(tower, images, dev, dtype)}
    for spec in specs:
        name, options = parse_method_spec(spec)
        torch.manual_seed(seed)
        model = build_model(name, tower, tasks, options).train()
        labels = {t.name: torch.randint(0, t.num_classes, (batch,), generator=g).to(dev) for t in model.tasks}
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
        steps[spec] = _method_step(model, images, labels, optimizer, dev, dtype)
    return steps


def bench_training(backbone: str | Backbone, methods: list[str], batch_sizes: list[int] = (32,),
                   device: str = "cpu", weights: str | None = "random", dtype: str = "fp32", repeats: int = 5,
                   warmup: int = 1, tasks: tuple[str, ...] | None = None, seed: int = 0,
                   stand_in_tokenizer: bool = False, compile: str = "off", peak: float | None = None
                   ) -> list[TrainRow]:
    """Training-step rows: the bare tower first, then ``methods``, per batch size (see the module's text)."""
    check_bench_options(dtype, repeats, warmup, batch_sizes)
    specs = [m for m in methods if m != TOWER]
    for spec in specs:
        parse_method_spec(spec)  # a bad spec fails before the tower loads
    tower = load_tower(backbone, weights, device, stand_in_tokenizer)
    dev, torch_dtype = tower.device, DTYPES[dtype]
    peak = peak_tflops(dev, dtype, peak)
    rows: list[TrainRow] = []
    for batch in batch_sizes:
        steps = _steps(tower, specs, batch, tasks, seed, torch_dtype)
        tower.compile_image_path("off")
        gflops = {name: count_gflops(step) / batch for name, step in steps.items()}
        tower.compile_image_path(compile)
        times: dict[str, list[float]] = {name: [] for name in steps}
        memory = warm_up(steps, warmup, dev)
        for _ in range(repeats):  # round-robin, as in bench_methods
            for name, step in steps.items():
                times[name].append(time_once(step, dev))
        base = statistics.median(times[TOWER])
        rss = None if dev.type == "cuda" else peak_rss_mb()
        for name in steps:
            median = statistics.median(times[name])
            tflops, share = achieved(gflops[name], batch / median, peak)
            rows.append(TrainRow(name, tower.name, str(dev), dtype, batch, repeats, 1e3 * median, batch / median,
                                 median / base, gflops[name], tflops, share, memory.get(name), rss, compile))
    tower.compile_image_path("off")
    return rows


def format_training_table(rows: list[TrainRow]) -> str:
    import pandas as pd

    frame = pd.DataFrame([asdict(r) for r in rows])
    columns = ["method", "batch_size", "median_ms", "images_per_s", "vs_tower", "gflops_per_image", "tflops",
               "peak_share", "peak_memory_mb", "peak_rss_mb"]
    return frame_text(frame, columns)

