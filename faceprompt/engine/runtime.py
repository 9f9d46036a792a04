"""Where training runs: one process in plain PyTorch, or data-parallel through Hugging Face Accelerate."""
from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

from faceprompt.backbones import resolve_device

PRECISIONS = ("auto", "fp32", "bf16")


class LocalRuntime:
    """One process, plain PyTorch: the simple, deterministic path."""

    is_main = True
    num_processes = 1

    def __init__(self, device: torch.device, bf16: bool):
        self.device, self.bf16 = device, bf16
        self.dtype = torch.bfloat16 if bf16 else torch.float32  # what features are computed in

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    def prepare(self, module: nn.Module, optimizer, loader):
        return module, optimizer, loader

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

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

    def __init__(self, bf16: bool, cpu: bool):
        from accelerate import Accelerator

        self.accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=cpu)
        super().__init__(self.accelerator.device, False)  # Accelerate applies the autocast itself
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self.is_main = self.accelerator.is_main_process
        self.num_processes = self.accelerator.num_processes

    def autocast(self):
        return contextlib.nullcontext()

    def prepare(self, module, optimizer, loader):
        return self.accelerator.prepare(module, optimizer, loader)

    def backward(self, loss):
        self.accelerator.backward(loss)

    def clip(self, params, max_norm):
        self.accelerator.clip_grad_norm_(params, max_norm)

    def main_process_first(self):
        return self.accelerator.main_process_first()

    def wait(self):
        self.accelerator.wait_for_everyone()


def make_runtime(device: str, precision: str = "auto", accelerate: bool | None = None) -> LocalRuntime:
    """``precision`` auto: bf16 autocast on a GPU, fp32 on a CPU; ``accelerate`` None: Accelerate when
    ``accelerate launch`` started several processes or the device is a GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    bf16 = precision == "bf16" or (precision == "auto" and resolved.type == "cuda")
    use_accelerate = accelerate if accelerate is not None else (world > 1 or resolved.type == "cuda")
    if use_accelerate:
        return AccelerateRuntime(bf16, cpu=resolved.type == "cpu")
    return LocalRuntime(resolved, bf16)
