"""Latency, throughput and memory of prompt methods against zero-shot on the same backbone and device.

``bench_methods`` times inference (``model(images)`` in eval mode, so text methods use their cached
class features) for every method and batch size, with warm-up calls, device synchronisation and
the median and spread over repeats. Methods are timed round-robin (one call of each per repeat),
so slow drift of a shared machine hits all of them alike. Every row carries its ratio to zero-shot
at the same batch size, and the GFLOPs per image of one call as PyTorch's own counter
(``torch.utils.flop_counter.FlopCounterMode``) counts them: matrix products and attention, the
operations that dominate a transformer (the thesis reported GFLOPs, not latency). ``bench_epoch_cache`` times one training epoch of a text method with and
without cached image features.

A method spec may carry options: ``vpt-ts:batched=false``, ``vpt:tokens=10,deep=true``.

``stand_in_tokenizer`` (``--stand-in-tokenizer``) times a tower with random weights whose tokenizer is
not on the machine (SigLIP2's Gemma tokenizer comes from the HF hub): token ids then come from a hash
of each word. The tower's cost depends on the context length, not on which ids fill it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from faceprompt.backbones import Backbone, load_backbone
from faceprompt.config import parse_overrides
from faceprompt.engine.runtime import resolve_device
from faceprompt.io import write_json_atomic
from faceprompt.training.losses import multitask_loss
from faceprompt.prompts import added_parameters, build_model, method_configs

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TimedRow:
    """What every benchmark row names first: what was timed, where, and its median time."""

    method: str
    backbone: str
    device: str
    dtype: str
    batch_size: int
    repeats: int
    median_ms: float


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
    tflops: float | None = None  # achieved: GFLOPs per image x images per second / 1000
    peak_share: float | None = None  # tflops / the device's peak (``peak_tflops``), where known
    compile: str = "off"  # the image path's torch.compile mode


# Dense (no sparsity) peak TFLOP/s of the tensor cores by device name and autocast dtype, from the vendors'
# data sheets (fp32: plain fp32, no TF32). A CPU's depends on its cores and clock: pass ``--peak-tflops``.
PEAK_TFLOPS = {
    "H200": {"bf16": 989.0, "fp32": 67.0},
    "H100": {"bf16": 989.0, "fp32": 67.0},  # SXM; the PCIe card is ~756 / 51
    "A100": {"bf16": 312.0, "fp32": 19.5},
    "L40S": {"bf16": 362.0, "fp32": 91.6},
    "L4": {"bf16": 121.0, "fp32": 30.3},
}


def peak_tflops(device: torch.device, dtype: str, given: float | None = None) -> float | None:
    """The device's peak TFLOP/s: ``given`` when set, else ``PEAK_TFLOPS`` for a known GPU, else None."""
    if given is not None:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):  # "L40S" before "L4"
        if key in name:
            return PEAK_TFLOPS[key].get(dtype)
    return None


def achieved(gflops_per_image: float | None, images_per_s: float, peak: float | None
             ) -> tuple[float | None, float | None]:
    """(TFLOP/s, share of ``peak``) at ``images_per_s``; None where a number is missing."""
    if gflops_per_image is None:
        return None, None
    tflops = gflops_per_image * images_per_s / 1e3
    return tflops, (tflops / peak if peak else None)


def parse_method_spec(spec: str) -> tuple[str, dict]:
    """'vpt-ts:batched=false,tokens=10' -> ('vpt-ts', {'batched': False, 'tokens': 10}).

    Values are YAML, as with ``--set``; an unknown method, option or a value the method can't take is
    refused naming the spec, before anything is built.
    """
    name, _, rest = spec.partition(":")
    name, items = name.strip(), [item.strip() for item in rest.split(",") if item.strip()]
    bad = [item for item in items if not item.partition("=")[0].strip() or "=" not in item]
    if bad:
        raise ValueError(f"--methods {spec!r}: option {bad[0]!r} is not KEY=VALUE (e.g. vpt:tokens=10,deep=true)")
    try:
        options = parse_overrides(items, flag="--methods")
        method_configs(name, options)
    except ValueError as err:
        raise ValueError(f"--methods {spec!r}: {err}") from None
    return name, options


class StandInTokenizer:
    """Word-hash token ids, a closing id and zero padding: the call and ``pad_id`` of a real tokenizer."""

    pad_id = 0

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def __call__(self, texts: Sequence[str], context_length: int) -> torch.Tensor:
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [1 + zlib.crc32(word.encode()) % (self.vocab_size - 2) for word in text.split()]
            ids = ids[:context_length - 1] + [self.vocab_size - 1]
            out[row, :len(ids)] = torch.tensor(ids)
        return out


def load_tower(backbone: str | Backbone, weights: str | None, device: str,
               stand_in_tokenizer: bool = False) -> Backbone:
    if isinstance(backbone, Backbone):
        tower = backbone
    else:
        tower = load_backbone(backbone, weights, device=device)
    if stand_in_tokenizer:
        if weights != "random":
            raise ValueError("--stand-in-tokenizer: only for --weights random (trained weights need their own "
                             "tokenizer)")
        tower.tokenizer = StandInTokenizer(tower.vocab_size)
    return tower


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds for one call, with the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def count_gflops(fn: Callable[[], object]) -> float:
    """GFLOPs of one call of ``fn`` as ``FlopCounterMode`` counts them (a multiply-add is 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def check_bench_options(dtype: str, repeats: int, warmup: int, batch_sizes: Sequence[int]) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"--dtype: {dtype!r}; choose from {list(DTYPES)}")
    if repeats < 1 or warmup < 0 or any(b < 1 for b in batch_sizes):
        raise ValueError("repeats >= 1, warmup >= 0 and batch sizes >= 1 are required")


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
        gflops = {spec: count_gflops(_inference_call(models[spec], images, dev, torch_dtype, counting=True)) / batch
                  for spec in specs}
        tower.compile_image_path(compile)
        peaks = {}
        for spec, call in calls.items():  # warm-up also fills the class-feature caches
            for _ in range(warmup):
                call()
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
                call()
                peaks[spec] = torch.cuda.max_memory_allocated(dev) / 2**20
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
                gflops_per_image=gflops[spec], tflops=tflops, peak_share=share, compile=compile))
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


def _inference_call(model, images, device, dtype, counting: bool = False) -> Callable[[], object]:
    # the FLOP counter hooks modules through autograd, which inference mode and no_grad switch off:
    # it counts with a graph built (one call; gradients never run)
    grad_mode = torch.enable_grad if counting else torch.inference_mode

    def call():
        with grad_mode(), _autocast(device, dtype):
            return model(images)
    return call


# --- one training epoch with and without cached image features ----------------------------------

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


# --- command line --------------------------------------------------------------------------------

def format_table(rows: list[BenchRow]) -> str:
    """A plain-text table of the rows."""
    import pandas as pd

    frame = pd.DataFrame([asdict(r) for r in rows])
    columns = ["method", "batch_size", "median_ms", "p25_ms", "p75_ms", "ms_per_image", "images_per_s",
               "vs_zero_shot", "gflops_per_image", "tflops", "peak_share", "added_parameters", "peak_memory_mb"]
    return frame_text(frame, columns)


def frame_text(frame, columns: list[str]) -> str:
    """The columns as plain text, every number to three decimals; a column with no value here is shown n/a."""
    frame = frame[columns].astype(object).where(frame[columns].notna(), "n/a")
    return frame.to_string(index=False, float_format=lambda v: f"{v:.3f}",
                           formatters={c: _three_decimals for c in columns})


def _three_decimals(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", required=True, help="backbone name (e.g. pe-core-b16)")
    parser.add_argument("--weights", default="random", help="random (default), hub, a file or local-dir:...")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="methods besides zero-shot (default coop softcpt vpt; --epoch-cache: softcpt); "
                             "options as NAME:key=value,... (vpt-ts:batched=false)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--epoch-cache", action="store_true",
                        help="time one training epoch with and without cached image features instead")
    parser.add_argument("--images", type=int, default=512, help="--epoch-cache: images in the epoch")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32],
                        help="--epoch-cache: training batch sizes (one cache build serves them all)")
    parser.add_argument("--stand-in-tokenizer", action="store_true",
                        help="random weights only: word-hash token ids, for a tower whose tokenizer is not cached "
                             "(SigLIP2's comes from the HF hub)")
    parser.add_argument("--compile", nargs="?", const="default", default="off", choices=Backbone.COMPILE_MODES,
                        help="the image path through torch.compile, in this mode (no value: default; "
                             "reduce-overhead: CUDA graphs, for batch 1 on a GPU); the warm-up calls compile")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak TFLOP/s for the share column (default: known GPUs' data sheets)")
    parser.add_argument("--train", action="store_true",
                        help="time training steps instead (forward, backward, optimizer) at --batch-size, "
                             "against the bare tower's forward-backward")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the options (backbone, methods, JSON target) and say what would run; load nothing")


def _check_json_target(path: str | None) -> None:
    """``--json`` must name a file that can be written, known before minutes of timing."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"--json {path}: is a folder; give a file name (e.g. {target / 'bench.json'})")
    if target.parent.exists() and not target.parent.is_dir():
        raise ValueError(f"--json {path}: {target.parent} is a file, not a folder")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    _check_json_target(args.json)
    for spec in args.methods or []:
        parse_method_spec(spec)
    if args.dry_run:
        from faceprompt.backbones import get_spec

        get_spec(args.backbone)
        mode = "training steps" if args.train else "one epoch with and without cache" if args.epoch_cache else \
            "inference"
        print(f"would time {mode} of {args.backbone} on {args.device} ({args.dtype}, compile {args.compile}): "
              f"{' '.join(args.methods or ['(default methods)'])}")
        return 0
    resolve_device(args.device, "--device")
    compile = args.compile
    if args.train:
        from faceprompt.bench_train import run_training

        records = run_training(args, compile)
    elif args.epoch_cache:
        method = args.methods[0] if args.methods else "softcpt"
        results = bench_epoch_cache(args.backbone, method, args.images, args.batch_size, args.device, args.weights,
                                    stand_in_tokenizer=args.stand_in_tokenizer)
        import pandas as pd

        records = [asdict(r) for r in results]
        print(f"{method} on {results[0].backbone} ({results[0].device}), one epoch over {args.images} images")
        print(pd.DataFrame(records).drop(columns=["method", "backbone", "device", "images"]).to_string(
            index=False, float_format=lambda v: f"{v:.2f}"))
    else:
        rows = bench_methods(args.backbone, args.methods or ["coop", "softcpt", "vpt"], args.batch_sizes,
                             args.device, args.weights, args.dtype, args.repeats, args.warmup,
                             stand_in_tokenizer=args.stand_in_tokenizer, compile=compile, peak=args.peak_tflops)
        tokens = ", stand-in tokens" if args.stand_in_tokenizer else ""
        compiled = f", compiled ({compile})" if compile != "off" else ""
        print(f"{rows[0].backbone} on {rows[0].device}, {rows[0].dtype}{tokens}{compiled}, "
              f"median of {rows[0].repeats} repeats")
        print(format_table(rows))
        records = [asdict(r) for r in rows]
    if args.json:
        write_json_atomic(Path(args.json), records)
        print(f"wrote {args.json}")
    return 0
