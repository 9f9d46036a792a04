"""The model pretraining makes: an open_clip model of a registered config, its optimizer groups, patch
dropping, and its export as an open_clip local-dir folder that ``load_backbone`` reads."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from faceprompt import backbones
from faceprompt.engine.optim import decay_groups, make_optimizer as engine_optimizer
from faceprompt.io import atomic_path, write_json_atomic
from faceprompt.pretraining.augment import MEAN, STD
from faceprompt.pretraining.config import PretrainConfig


def create_model(name: str, seed: int, **model_kwargs) -> nn.Module:
    """A freshly initialised open_clip model of a registered config (timm towers registered on import);
    ``model_kwargs`` override config fields (e.g. ``init_logit_bias=-10`` for the sigmoid loss)."""
    import open_clip

    import faceprompt.backbones  # noqa: F401  (registers the timm towers and the model configs)

    torch.manual_seed(seed)
    return open_clip.create_model(name, pretrained=None, **model_kwargs)


def check_image_size(cfg: PretrainConfig) -> None:
    """Fail before the image cache is built when the config's size is not the model's input size."""
    import open_clip

    import faceprompt.backbones  # noqa: F401  (registers the model configs)

    model_cfg = open_clip.get_model_config(cfg.model)
    if model_cfg is None:
        raise ValueError(f"model: {cfg.model!r} is not an open_clip model config")
    size = model_cfg["vision_cfg"]["image_size"]
    if cfg.image_size != size:
        raise ValueError(f"image_size: {cfg.image_size} px, but model {cfg.model} takes {size} px images "
                         f"(vision_cfg.image_size); set image_size: {size}")


def set_patch_drop(model: nn.Module, rate: float) -> None:
    """FLIP-style token dropping while training (Eva keeps RoPE aligned with the kept tokens)."""
    from timm.layers import PatchDropoutWithIndices

    trunk = model.visual.trunk
    trunk.patch_drop = PatchDropoutWithIndices(rate, num_prefix_tokens=trunk.num_prefix_tokens) if rate > 0 else None


def short_text(model: nn.Module, length: int) -> contextlib.AbstractContextManager:
    """Run ``model``'s text tower on its first ``length`` positions (captions are short)."""
    return backbones.short_text(model.text, length)


def _no_decay(name: str, param: nn.Parameter) -> bool:
    """Norms, biases, embeddings and the cls/query tokens keep their size."""
    return param.ndim < 2 or "embedding" in name or "token" in name or "latent" in name


def make_optimizer(model: nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms, biases, embeddings, the logit scale/bias and the cls/query tokens;
    the logit scale at its own rate ``logit_scale_lr`` (the schedule scales it like the rest)."""
    named = [(n, p) for n, p in model.named_parameters() if n != "logit_scale"]
    groups = decay_groups(named, cfg.weight_decay, _no_decay)
    groups.append({"params": [model.logit_scale], "weight_decay": 0.0, "lr": cfg.logit_scale_lr})
    return engine_optimizer("adamw", groups, cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def preprocess_config(size: int) -> dict:
    return {"size": size, "mean": list(MEAN), "std": list(STD), "interpolation": "bilinear",
            "resize_mode": "squash"}


def export_local_dir(model: nn.Module, cfg: PretrainConfig, out: Path) -> Path:
    """Write the open_clip local-dir layout: open_clip_config.json + open_clip_model.safetensors."""
    import open_clip
    from safetensors.torch import save_file

    dtype = getattr(torch, cfg.storage_dtype)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / "open_clip_model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "storage_dtype": cfg.storage_dtype})
    write_json_atomic(out / "open_clip_config.json", {
        "model_cfg": open_clip.get_model_config(cfg.model),
        "preprocess_cfg": preprocess_config(cfg.image_size),
    })
    return out



def backbone_name(cfg: PretrainConfig) -> str:
    """The registry name to load the exported weights under (registered on first use for a fresh config)."""
    from faceprompt.backbones import BACKBONES, BackboneSpec, register_backbone

    spec = BACKBONES.get("faceclip-tiny")
    if spec is not None and spec.model_name == cfg.model:
        return spec.name
    name = f"pretrained-{cfg.model}"
    if name not in BACKBONES:
        register_backbone(BackboneSpec(name, cfg.model, "pe-core", description="a model from faceprompt pretrain"))
    return name
