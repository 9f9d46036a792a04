"""open_clip imported without what no faceprompt backbone needs at start-up (``import_open_clip``).

open_clip imports ``transformers`` at once for CoCa and HF text towers (about a second), which none of
faceprompt's backbones use; its imports of it are optional, so it is imported with ``transformers`` hidden.
The SigLIP2 tokenizer still imports ``transformers`` when it is built (open_clip imports it there).

The compiler (``torch._dynamo``, about a second more) is deferred too: torchvision's ``roi_align``, which
open_clip reaches through ``torchvision.ops``, imports ``is_compile_supported`` from it, and timm marks some
NaFlexViT methods with ``torch.compiler.disable``, both at import time. Stand-in modules answer those two
names and load the real compiler on first use; any other name, or submodule, asked of them while open_clip
imports loads the real compiler at once. Once open_clip is in, the stand-ins are gone from ``sys.modules``
and ``import torch._dynamo`` gives the real one.
"""
from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import sys
import types

import torch

COMPILER = "torch._dynamo"
STAND_INS = (COMPILER, f"{COMPILER}.utils")


def import_open_clip() -> None:
    if "open_clip" in sys.modules or "transformers" in sys.modules:
        return
    sys.modules["transformers"] = None  # makes `import transformers` raise ImportError
    stand_ins = {} if COMPILER in sys.modules else _stand_ins()
    finder = _RealSubmodules(stand_ins)
    sys.modules.update(stand_ins)
    sys.meta_path.insert(0, finder)
    try:
        import open_clip  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
        if sys.modules.get("transformers", 0) is None:
            del sys.modules["transformers"]
        _drop(stand_ins)


def _stand_ins() -> dict[str, types.ModuleType]:
    modules = {name: types.ModuleType(name) for name in STAND_INS}

    def real(module: str):
        _drop(modules)
        return importlib.import_module(module)

    def attribute(module: str):
        def get(name: str):
            if name.startswith("__"):  # inspect and pickle probe every module for dunders
                raise AttributeError(name)
            return getattr(real(module), name)
        return get

    def is_compile_supported(*args, **kwargs):
        return real(f"{COMPILER}.utils").is_compile_supported(*args, **kwargs)

    def disable(fn=None, recursive=True, reason=None):
        """Each method so marked is marked for real on its first call."""
        if fn is None:
            return functools.partial(disable, recursive=recursive, reason=reason)
        marked = []

        @functools.wraps(fn)
        def deferred(*args, **kwargs):
            if not marked:
                marked.append(real(COMPILER).disable(fn, recursive, reason=reason))
            return marked[0](*args, **kwargs)
        return deferred

    modules[COMPILER].__path__ = []
    for name, module in modules.items():
        module.__getattr__ = attribute(name)
    modules[f"{COMPILER}.utils"].is_compile_supported = is_compile_supported
    modules[COMPILER].disable = disable
    return modules


def _drop(modules: dict[str, types.ModuleType]) -> None:
    for name, module in modules.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]
    if COMPILER in modules and torch.__dict__.get("_dynamo") is modules[COMPILER]:
        delattr(torch, "_dynamo")  # torch's own lazy attribute then imports the real one


class _RealSubmodules(importlib.abc.MetaPathFinder):
    """A compiler submodule the stand-ins lack, imported while they stand in: the real compiler, then it."""

    def __init__(self, stand_ins: dict[str, types.ModuleType]):
        self.stand_ins, self.done = stand_ins, not stand_ins

    def find_spec(self, name, path, target=None):
        if self.done or not name.startswith(f"{COMPILER}.") or name in self.stand_ins:
            return None
        self.done = True
        _drop(self.stand_ins)
        importlib.import_module(COMPILER)
        return importlib.util.find_spec(name)
