"""What every benchmark shares: dtypes, the row every table starts with, timing one call with the device
synchronised, FLOPs counted two ways, achieved TFLOP/s against a device's peak, method specs with options,
and loading the tower to time.

FLOPs: ``count_gflops`` is PyTorch's ``FlopCounterMode``, which counts matrix products, convolutions and
attention (the fused ``scaled_dot_product_attention`` kernels included; the CPU's with the formulas added
here); ``count_gflops_profiler`` is what the thesis measured (``test.py``: ``torch.profiler`` with
``with_flops=True``, every event's FLOPs summed), whose formulas cover matrix products, convolutions and
elementwise adds and multiplies but no fused attention kernel. A multiply-add is 2 FLOPs in both.

A method spec may carry options: ``vpt-ts:batched=false``, ``vpt:tokens=10,deep=true``.

``stand_in_tokenizer`` (``--stand-in-tokenizer``) times a tower with random weights whose tokenizer is
not on the machine (SigLIP2's Gemma tokenizer comes from the HF hub): token ids then come from a hash
of each word. The tower's cost depends on the context length, not on which ids fill it.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from faceprompt.backbones import Backbone, load_backbone
from faceprompt.config import parse_overrides
from faceprompt.prompts import method_configs

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


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to ``dtype`` on ``device``; nothing for fp32."""
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


def warm_up(calls: dict[str, Callable[[], object]], warmup: int, device: torch.device) -> dict[str, float]:
    """Run each call ``warmup`` times, then on CUDA once more to read its peak memory; name -> MiB (CUDA only)."""
    peaks = {}
    for name, call in calls.items():
        for _ in range(warmup):
            call()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            call()
            peaks[name] = torch.cuda.max_memory_allocated(device) / 2**20
    return peaks


def _cpu_attention_formulas() -> dict:
    """Formulas for the CPU's fused attention kernel, forward and backward, where ``FlopCounterMode`` has none
    (torch 2.14 knows the CUDA kernels only): the same count as the CUDA kernels' formulas."""
    from torch.utils import flop_counter

    aten = torch.ops.aten

    def forward(query, key, value, *args, out_val=None, **kwargs):
        return flop_counter.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_val=None, **kwargs):
        return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)

    formulas = {aten._scaled_dot_product_flash_attention_for_cpu: forward,
                aten._scaled_dot_product_flash_attention_for_cpu_backward: backward}
    return {op: f for op, f in formulas.items() if op not in flop_counter.flop_registry}


def count_gflops(fn: Callable[[], object]) -> float:
    """GFLOPs of one call of ``fn`` as ``FlopCounterMode`` counts them, attention included on every device."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas())
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


@contextlib.contextmanager
def _stderr_silenced():
    """The profiler's C++ side writes start and stop lines to the process's stderr; they say nothing here."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def count_gflops_profiler(fn: Callable[[], object]) -> float:
    """GFLOPs of one call of ``fn`` as the thesis counted them: ``torch.profiler`` with ``with_flops=True`` and
    the FLOPs of every event added. The FLOPs belong to operator events, which the profiler records on the
    CPU side whatever the device, so CPU activity alone gives the thesis's sum."""
    from torch.profiler import ProfilerActivity, profile

    with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        fn()
    return sum(event.flops for event in prof.events() if event.flops) / 1e9


def check_bench_options(dtype: str, repeats: int, warmup: int, batch_sizes: Sequence[int]) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"--dtype: {dtype!r}; choose from {list(DTYPES)}")
    if repeats < 1 or warmup < 0 or any(b < 1 for b in batch_sizes):
        raise ValueError("repeats >= 1, warmup >= 0 and batch sizes >= 1 are required")


def frame_text(frame, columns: list[str]) -> str:
    """The columns as plain text, every number to three decimals; a column with no value here is shown n/a."""
    frame = frame[columns].astype(object).where(frame[columns].notna(), "n/a")
    return frame.to_string(index=False, float_format=lambda v: f"{v:.3f}",
                           formatters={c: _three_decimals for c in columns})


def _three_decimals(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)

