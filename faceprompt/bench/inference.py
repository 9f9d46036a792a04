"""Latency, throughput and memory of prompt methods against zero-shot on the same backbone and device.

``bench_methods`` times inference (``model(images)`` in eval mode, so text methods use their cached
class features) for every method and batch size, with warm-up calls, device synchronisation and
the median and spread over repeats. Methods are timed round-robin (one call of each per repeat),
so slow drift of a shared machine hits all of them alike. Every row carries its ratio to zero-shot
at the same batch size, and the GFLOPs per image of one call counted two ways (``bench.timing``):
``gflops_per_image`` by PyTorch's ``FlopCounterMode`` (matrix products and attention, the operations that
dominate a transformer), ``gflops_per_image_profiler`` by ``torch.profiler`` with ``with_flops=True``, as the
thesis measured (it reported GFLOPs, not latency), which misses the fused attention kernels.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from faceprompt.backbones import Backbone
from faceprompt.bench.timing import (DTYPES, TimedRow, achieved, autocast, check_bench_options, count_gflops,
                                     count_gflops_profiler, frame_text, load_tower, parse_method_spec, peak_tflops,
                                     time_once, warm_up)
from faceprompt.prompts import added_parameters, build_model


@dataclass(frozen=True)
class BenchRow(TimedRow):
    """One method at one batch size. Times are per batch call unless named per image."""

    p25_ms: float
    p75_ms: float
    ms_per_image: float
    images_per_s: float
    vs_zero_shot: float  # median / zero-shot median at this batch size
    added_parameters: int
    peak_memory_mb: float | None  # where the device reports it (CUDA)
    gflops_per_image: float | None = None  # FlopCounterMode over one call, divided by the batch size
    # torch.profiler(with_flops=True) over one call under no_grad, as the thesis's test.py: no fused attention
    gflops_per_image_profiler: float | None = None
    tflops: float | None = None  # achieved: GFLOPs per image x images per second / 1000
    peak_share: float | None = None  # tflops / the device's peak (``peak_tflops``), where known
    compile: str = "off"  # the image path's torch.compile mode



def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)



def bench_methods(backbone: str | Backbone, methods: list[str], batch_sizes: list[int] = (1, 64),
                  device: str = "cpu", weights: str | None = "random", dtype: str = "fp32", repeats: int = 5,
                  warmup: int = 1, tasks: tuple[str, ...] | None = None, seed: int = 0,
                  stand_in_tokenizer: bool = False, compile: str = "off",
                  peak: float | None = None) -> list[BenchRow]:
    """Inference timing rows for zero-shot (always included, first) and ``methods``.

    ``compile``: the image path's ``torch.compile`` mode (``Backbone.compile_image_path``); the warm-up calls
    compile, FLOPs are counted on the eager path. ``peak``: the device's peak TFLOP/s (default: ``PEAK_TFLOPS``).
    """
    check_bench_options(dtype, repeats, warmup, batch_sizes)
    specs = ["zero-shot"] + [m for m in methods if m != "zero-shot"]
    parsed = {spec: parse_method_spec(spec) for spec in specs}  # a bad spec fails before the tower loads
    tower = load_tower(backbone, weights, device, stand_in_tokenizer)
    dev, torch_dtype = tower.device, DTYPES[dtype]
    peak = peak_tflops(dev, dtype, peak)
    models = {}
    torch.manual_seed(seed)
    for spec, (name, options) in parsed.items():
        models[spec] = build_model(name, tower, tasks, options).eval()
    _fill_class_feature_caches(models)
    rows: list[BenchRow] = []
    for batch in batch_sizes:
        images = torch.randn(batch, 3, tower.image_size, tower.image_size, device=dev)
        calls = {spec: _inference_call(model, images, dev, torch_dtype) for spec, model in models.items()}
        times = {spec: [] for spec in specs}
        tower.compile_image_path("off")
        gflops = {spec: count_gflops(_inference_call(models[spec], images, dev, torch_dtype, torch.enable_grad))
                  / batch for spec in specs}
        profiled = {spec: count_gflops_profiler(_inference_call(models[spec], images, dev, torch_dtype, torch.no_grad))
                    / batch for spec in specs}
        tower.compile_image_path(compile)
        peaks = warm_up(calls, warmup, dev)  # warm-up also fills the class-feature caches
        for _ in range(repeats):
            for spec, call in calls.items():
                times[spec].append(time_once(call, dev))
        base = statistics.median(times["zero-shot"])
        for spec in specs:
            median = statistics.median(times[spec])
            tflops, share = achieved(gflops[spec], batch / median, peak)
            rows.append(BenchRow(
                method=spec, backbone=tower.name, device=str(dev), dtype=dtype, batch_size=batch, repeats=repeats,
                median_ms=1e3 * median, p25_ms=1e3 * _quantile(times[spec], 0.25),
                p75_ms=1e3 * _quantile(times[spec], 0.75), ms_per_image=1e3 * median / batch,
                images_per_s=batch / median, vs_zero_shot=median / base,
                added_parameters=added_parameters(models[spec]), peak_memory_mb=peaks.get(spec),
                gflops_per_image=gflops[spec], gflops_per_image_profiler=profiled[spec], tflops=tflops,
                peak_share=share, compile=compile))
    tower.compile_image_path("off")
    return rows


def _fill_class_feature_caches(models: dict) -> None:
    """Compute every model's inference-time class features before timing starts.

    Template prompts with the same config give the same features whatever the visual prompt, so
    they are encoded once and shared (on a CPU a B/16 text tower takes minutes over all templates).
    """
    shared: dict[str, dict[str, torch.Tensor]] = {}
    with torch.inference_mode():
        for model in models.values():
            if model.text.kind != "templates":
                model.class_features()
                continue
            key = json.dumps(model.text.cfg.to_dict(), sort_keys=True)
            if key not in shared:
                shared[key] = model.class_features()
            model._class_feature_cache = shared[key]


def _inference_call(model, images, device, dtype, grad_mode=torch.inference_mode) -> Callable[[], object]:
    # FlopCounterMode hooks modules through autograd, which inference mode and no_grad switch off: it counts
    # under enable_grad (one call; gradients never run). The profiler counts under no_grad, as the thesis did.
    def call():
        with grad_mode(), autocast(device, dtype):
            return model(images)
    return call



def format_table(rows: list[BenchRow]) -> str:
    """A plain-text table of the rows."""
    import pandas as pd

    frame = pd.DataFrame([asdict(r) for r in rows])
    columns = ["method", "batch_size", "median_ms", "p25_ms", "p75_ms", "ms_per_image", "images_per_s",
               "vs_zero_shot", "gflops_per_image", "gflops_per_image_profiler", "tflops", "peak_share",
               "added_parameters", "peak_memory_mb"]
    return frame_text(frame, columns)

