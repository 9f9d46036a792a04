"""The timm towers faceprompt defines and registers, and its open_clip model configs (``model_configs/``).

Tiny towers of the real classes (SigLIP2's VisionTransformer with a MAP head, PE-Core's Eva with 2-D RoPE)
are for tests and CPU runs; faceclip-tiny's towers are the small face models ``faceprompt pretrain`` trains.
Importing this module registers them with timm and adds the configs to open_clip.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from torch import nn

import open_clip
from timm.models import register_model
from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # faceprompt/
MODEL_CONFIG_DIR = _PACKAGE_DIR / "model_configs"


# --- tiny towers of the real classes, for tests and CPU runs -------------------------------------

def _tiny_kwargs(kwargs: dict) -> dict:
    # timm's factory passes pretrained-config bookkeeping that plain constructors do not take.
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)
    return kwargs


@register_model
def faceprompt_tiny_vit_map(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """SigLIP2-shaped: timm VisionTransformer, no cls token, MAP attention-pool head."""
    args = dict(img_size=64, patch_size=8, embed_dim=64, depth=2, num_heads=2, class_token=False, global_pool="map")
    return VisionTransformer(**{**args, **_tiny_kwargs(kwargs)})


def _pe_core_layout(embed_dim: int, depth: int) -> dict:
    """timm Eva arguments of the PE-Core layout (cls token, 2-D RoPE, pre-norm, MAP head) at 64 px."""
    return dict(
        img_size=64, patch_size=8, embed_dim=embed_dim, depth=depth, num_heads=2, mlp_ratio=4.0,
        global_pool="map", attn_type="rope", use_pre_transformer_norm=True, use_rot_pos_emb=True,
        ref_feat_shape=(8, 8), rope_grid_offset=1.0, rope_grid_indexing="xy", attn_pool_num_heads=2,
        attn_pool_mlp_ratio=4.0, norm_layer=partial(nn.LayerNorm, eps=1e-5),
    )


@register_model
def faceprompt_tiny_eva_rope(pretrained: bool = False, **kwargs) -> Eva:
    """PE-Core-shaped: timm Eva with a cls token, 2-D RoPE on patch tokens, pre-norm and MAP head."""
    return Eva(**{**_pe_core_layout(64, 2), **_tiny_kwargs(kwargs)})


@register_model
def faceprompt_faceclip_tiny_eva(pretrained: bool = False, **kwargs) -> Eva:
    """faceclip-tiny's vision tower: the PE-Core layout at 64 px, width 160, depth 4."""
    return Eva(**{**_pe_core_layout(160, 4), **_tiny_kwargs(kwargs)})


def convolutional_stem(embed_dim: int, widths: tuple[int, ...] = (32, 64)) -> nn.Sequential:
    """3x3 stride-2 convolutions that reach a patch grid of 8 px, then a 1x1 projection to the width.

    Early convolutions make a small transformer learn faster and better from little data (Xiao et al., 2021);
    the token grid stays the patch embedding's, so every prompt method's hooks apply unchanged.
    """
    layers: list[nn.Module] = []
    channels = 3
    for width in (*widths, embed_dim):
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.GELU()]
        channels = width
    layers.append(nn.Conv2d(embed_dim, embed_dim, 1))
    return nn.Sequential(*layers)


@register_model
def faceprompt_faceclip_wild_eva(pretrained: bool = False, **kwargs) -> Eva:
    """The in-the-wild retraining's vision tower: faceclip-tiny's at 80 px (10 x 10 patches), convolutional stem."""
    tower = Eva(**{**_pe_core_layout(160, 4), "img_size": 80, "ref_feat_shape": (10, 10), **_tiny_kwargs(kwargs)})
    tower.patch_embed.proj = convolutional_stem(tower.embed_dim)
    return tower


open_clip.add_model_config(MODEL_CONFIG_DIR)
