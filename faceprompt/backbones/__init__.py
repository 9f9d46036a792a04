"""Frozen SigLIP2 / PE-Core backbones loaded through open_clip, with the hooks prompt tuning needs.

Only the ``backbone`` module touches tower internals. Everything else sees a
:class:`Backbone`, which offers

* ``encode_image(images, prompts=None, deep=False)``: visual prompt tokens are
  inserted after the prefix tokens (none on SigLIP2, the cls token on PE-Core),
  at the input only (shallow) or replaced before every block (deep);
* ``encode_text(tokens, context=None)``: learnable context vectors overwrite the
  token embeddings at the placeholder slots made by ``tokenize_with_context``
  (after the start token on PE-Core, from position 0 on SigLIP2); the tower's
  own pooling is unchanged;
* what prompts and attention maps need to know of the towers: ``patch_size``,
  ``patch_grid``, ``patch_embeddings(images)``, ``token_embeddings(ids)``,
  ``image_tokens(...)`` and ``pool_attention(tokens)`` (the MAP head's weights).

Design choice: the attention-pool (MAP) head pools over *every* token, prompts
included, by default (``pool_prompts=True``). Both towers' MAP heads already
pool over all tokens (PE-Core's includes its cls token), and on SigLIP2, which
has no cls token, the latent query attending to the prompts is the only direct
read-out of them, the analogue of VPT's cls read-out. ``pool_prompts=False``
drops the prompt tokens before pooling for the ablation.

==========  ===========================================================================================
towers      the timm towers faceprompt defines (test towers, faceclip-tiny's) and its open_clip configs
registry    :class:`BackboneSpec`, ``BACKBONES``, ``register_backbone``, ``get_spec``
weights     where weights come from (hub, file, local dir, embedded, random, meta) and their errors
backbone    the frozen :class:`Backbone` and its prompt hooks
==========  ===========================================================================================
"""
from __future__ import annotations

import functools
import importlib
import sys
import types

import torch


def _deferred_dynamo() -> dict[str, types.ModuleType]:
    """Stand-ins for ``torch._dynamo`` and its ``utils`` while open_clip imports: torchvision's ``roi_align``
    (which open_clip reaches through ``torchvision.ops``) imports ``is_compile_supported`` from it at import
    time, and importing the compiler costs about a second. The stand-in function imports the real one when
    it is called; any other public name asked of a stand-in loads the real compiler at once."""
    modules = {name: types.ModuleType(name) for name in ("torch._dynamo", "torch._dynamo.utils")}

    def real(module: str):
        _drop_stand_ins(modules)
        return importlib.import_module(module)

    def attribute(module: str):
        def get(name: str):
            if name.startswith("__"):  # inspect and pickle probe every module for dunders
                raise AttributeError(name)
            return getattr(real(module), name)
        return get

    def is_compile_supported(*args, **kwargs):
        return real("torch._dynamo.utils").is_compile_supported(*args, **kwargs)

    def disable(fn=None, recursive=True, reason=None):
        """timm marks some NaFlexViT methods at import; each is marked for real on its first call."""
        if fn is None:
            return functools.partial(disable, recursive=recursive, reason=reason)
        marked = []

        @functools.wraps(fn)
        def deferred(*args, **kwargs):
            if not marked:
                marked.append(real("torch._dynamo").disable(fn, recursive, reason=reason))
            return marked[0](*args, **kwargs)
        return deferred

    modules["torch._dynamo"].__path__ = []
    for name, module in modules.items():
        module.__getattr__ = attribute(name)
    modules["torch._dynamo.utils"].is_compile_supported = is_compile_supported
    modules["torch._dynamo"].disable = disable
    return modules


def _drop_stand_ins(modules: dict[str, types.ModuleType]) -> None:
    for name, module in modules.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]
    if "torch._dynamo" in modules and torch.__dict__.get("_dynamo") is modules["torch._dynamo"]:
        delattr(torch, "_dynamo")  # torch's own lazy attribute then imports the real one


def _import_open_clip_without_transformers() -> None:
    """open_clip imports ``transformers`` at once for CoCa and HF text towers (about a second), which none of
    faceprompt's backbones use; its imports are optional, so it is imported with ``transformers`` hidden.
    The SigLIP2 tokenizer still imports ``transformers`` when it is built (open_clip imports it there).
    The compiler (``torch._dynamo``) is deferred the same way until something uses it."""
    if "open_clip" in sys.modules or "transformers" in sys.modules:
        return
    sys.modules["transformers"] = None  # makes `import transformers` raise ImportError
    stand_ins = {} if "torch._dynamo" in sys.modules else _deferred_dynamo()
    sys.modules.update(stand_ins)
    try:
        import open_clip  # noqa: F401
    finally:
        if sys.modules.get("transformers", 0) is None:
            del sys.modules["transformers"]
        _drop_stand_ins(stand_ins)


_import_open_clip_without_transformers()

# The imports below come after open_clip's (E402): they import it too.
from faceprompt.backbones.towers import MODEL_CONFIG_DIR, convolutional_stem  # noqa: E402  (registers the towers)
from faceprompt.backbones.registry import (BACKBONES, PRETRAINED_DIR, BackboneSpec,  # noqa: E402
                                           embedded_model_name, get_spec, list_backbones, register_backbone)
from faceprompt.backbones.weights import (RANDOM_INIT_SEED, WeightsFileError, WeightsNotFoundError,  # noqa: E402
                                          _create, count_parameters_meta, hub_weights_cached, weights_available)
from faceprompt.backbones.backbone import Backbone, short_text  # noqa: E402

__all__ = [
    "BACKBONES", "MODEL_CONFIG_DIR", "PRETRAINED_DIR", "RANDOM_INIT_SEED", "Backbone", "BackboneSpec",
    "WeightsFileError", "WeightsNotFoundError", "convolutional_stem", "count_parameters_meta", "embedded_model_name",
    "get_spec", "hub_weights_cached", "list_backbones", "load_backbone", "register_backbone", "short_text",
    "weights_available",
]


def load_backbone(name: str, weights: str | None = None, device: str | torch.device = "cpu") -> Backbone:
    """Build a frozen :class:`Backbone`.

    ``weights``: None (the backbone's default: hub tag, embedded weights, or random for test towers),
    ``"hub"``, ``"random"``, ``"meta"`` (shapes only, for counting), a weights file, or ``"local-dir:/folder"``.
    """
    spec = get_spec(name)
    model, preprocess, identity = _create(spec, weights, device)
    return Backbone(spec, model, preprocess, identity)

