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

================  ========================================================================================
towers            the timm towers faceprompt defines (test towers, faceclip-tiny's) and its open_clip configs
registry          :class:`BackboneSpec`, ``BACKBONES``, ``register_backbone``, ``get_spec``
weights           where weights come from (hub, file, local dir, embedded, random, meta) and their errors
backbone          the frozen :class:`Backbone` and its prompt hooks
open_clip_import  open_clip imported without what no faceprompt backbone needs at start-up
================  ========================================================================================
"""
from __future__ import annotations

import torch

from faceprompt.backbones.open_clip_import import import_open_clip

import_open_clip()

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

