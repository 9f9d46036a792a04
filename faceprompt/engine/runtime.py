"""Where training runs: one process in plain PyTorch, or data-parallel through Hugging Face Accelerate."""
from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | torch.device, field: str = "device") -> torch.device:
    """``name`` as a torch device ("auto": a GPU when there is one), failing at once, naming ``field``, where
    it asks for a GPU that is not there."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{field}: {str(name)!r}, but torch {torch.__version__} sees no CUDA GPU; use device: cpu")
    return device


class LocalRuntime:
    """One process, plain PyTorch: the simple, deterministic path.

    ``precision`` fp16 autocasts to float16 and scales the loss with a gradient scaler (float16's
    range is too small for small gradients); it needs CUDA.
    """

    is_main = True
    num_processes = 1

    def __init__(self, device: torch.device, bf16: bool = False, precision: str | None = None):
        self.device = device
        self.precision = precision or ("bf16" if bf16 else "fp32")
        self.bf16 = self.precision == "bf16"
        self.dtype = AUTOCAST_DTYPES.get(self.precision, torch.float32)  # what features are computed in
        self.scaler = torch.amp.GradScaler(device.type) if self.precision == "fp16" else None

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare(self, module: nn.Module, optimizer, loader):
        return module, optimizer, loader

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer) -> None:
        """Gradients back to their true size before clipping (a no-op without a scaler)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        """The optimizer step; with a scaler, skipped when a gradient overflowed, and the scale updated."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def clip(self, params, max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)

    def main_process_first(self):
        return contextlib.nullcontext()

    def wait(self) -> None:
        pass

    def describe(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"


class AccelerateRuntime(LocalRuntime):
    """Data-parallel over the processes ``accelerate launch`` started (or one, on a GPU)."""

    def __init__(self, bf16: bool, cpu: bool, precision: str | None = None):
        from accelerate import Accelerator

        precision = precision or ("bf16" if bf16 else "fp32")
        # Accelerate applies the autocast and, for fp16, its own gradient scaler inside backward/step
        self.accelerator = Accelerator(mixed_precision="no" if precision == "fp32" else precision, cpu=cpu)
        super().__init__(self.accelerator.device, False)
        self.dtype = AUTOCAST_DTYPES.get(precision, torch.float32)
        self.is_main = self.accelerator.is_main_process
        self.num_processes = self.accelerator.num_processes

    def autocast(self):
        return contextlib.nullcontext()

    def prepare(self, module, optimizer, loader):
        return self.accelerator.prepare(module, optimizer, loader)

    def backward(self, loss):
        self.accelerator.backward(loss)

    def unscale(self, optimizer):
        pass  # Accelerate's clip_grad_norm_ unscales

    def step(self, optimizer):
        optimizer.step()

    def clip(self, params, max_norm):
        self.accelerator.clip_grad_norm_(params, max_norm)

    def main_process_first(self):
        return self.accelerator.main_process_first()

    def wait(self):
        self.accelerator.wait_for_everyone()


def make_runtime(device: str, precision: str = "auto", accelerate: bool | None = None) -> LocalRuntime:
    """``precision`` auto: bf16 autocast on a GPU, fp32 on a CPU; fp16 (autocast + gradient scaler) only
    on CUDA. ``accelerate`` None: Accelerate when ``accelerate launch`` started several processes or the
    device is a GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    if precision == "fp16" and resolved.type != "cuda":
        raise ValueError(f"precision: fp16 needs a CUDA device (this run is on {resolved.type}); its gradient "
                         f"scaler and float16 kernels are a GPU path. Use precision bf16 or fp32 here")
    if precision == "auto":
        precision = "bf16" if resolved.type == "cuda" else "fp32"
    use_accelerate = accelerate if accelerate is not None else (world > 1 or resolved.type == "cuda")
    if use_accelerate:
        return AccelerateRuntime(precision == "bf16", cpu=resolved.type == "cpu", precision=precision)
    return LocalRuntime(resolved, precision=precision)
