"""Where a model looks: pixel attributions (captum) and the attention of the pooling head.

* :func:`integrated_gradients` attributes a task's predicted-class logit to the input pixels with
  captum's Integrated Gradients (black image as the baseline) and returns one H x W map per image.
* :func:`pool_attention` reads the attention of the towers' attention-pool (MAP) head: the latent
  query's softmax weights over every final token (prefix, visual prompts, patches). Its patch part,
  reshaped to the patch grid, is a map of which image regions the image feature is made from; its
  prompt part says how much of the feature is read from the visual prompts.

Both work for every method: the visual prompts a method inserts for a task (VPT's shared set, VPT-TS's
task set, V2PT's learned + generated prompts) come from the method's own ``visual.prompts_for``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from faceprompt.backbones import Backbone
from faceprompt.prompts import PromptModel


@dataclass
class PoolAttention:
    """MAP-head attention for a batch: per-image weights on patches (grid), prompts and prefix tokens."""

    patches: torch.Tensor  # [B, h, w], sums with the others to 1 per image
    prompts: torch.Tensor  # [B, tokens]
    prefix: torch.Tensor  # [B, n_prefix] (PE-Core's cls token; empty on SigLIP2)

    @property
    def prompt_share(self) -> torch.Tensor:
        """[B] fraction of the pooled feature's attention that goes to the visual prompt tokens."""
        return self.prompts.sum(-1)


@torch.no_grad()
def pool_attention(backbone: Backbone, images: torch.Tensor, prompts: torch.Tensor | None = None,
                   deep: bool = False) -> PoolAttention:
    """Attention weights of the MAP head's latent query over the final tokens, mean over heads and latents."""
    weights = backbone.pool_attention(backbone.image_tokens(images, prompts, deep))
    n_pre = backbone.num_prefix_tokens
    tokens = 0 if prompts is None else prompts.shape[-2]
    patches = weights[:, n_pre + tokens:].reshape(weights.shape[0], *backbone.patch_grid)
    return PoolAttention(patches, weights[:, n_pre:n_pre + tokens], weights[:, :n_pre])


def method_attention(model: PromptModel, images: torch.Tensor, task: str) -> PoolAttention:
    """:func:`pool_attention` with the visual prompts ``model`` inserts for ``task`` (its ``prompts_for``)."""
    model.eval()
    with torch.no_grad():
        prompts, deep = model.visual.prompts_for(images, task)
    return pool_attention(model.backbone, images, prompts, deep)


def upsample(maps: torch.Tensor, size: int) -> np.ndarray:
    """[B, h, w] maps -> [B, size, size] numpy arrays (bilinear), for overlays on the input images."""
    out = F.interpolate(maps.unsqueeze(1).float(), size=(size, size), mode="bilinear", align_corners=False)
    return out[:, 0].cpu().numpy()


def predicted_classes(model: PromptModel, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Arg-max class per task [B] (eval mode, no gradients)."""
    model.eval()
    with torch.no_grad():
        return {t: logits.argmax(-1) for t, logits in model(images).logits.items()}


def predicted_labels(model: PromptModel, images: torch.Tensor, task: str) -> list[str]:
    """The predicted class name of ``task`` for each image."""
    classes = model.tasks[model.task_names.index(task)].classes
    return [classes[int(i)] for i in predicted_classes(model, images)[task]]


def integrated_gradients(model: PromptModel, images: torch.Tensor, task: str, target: torch.Tensor | None = None,
                         steps: int = 16) -> np.ndarray:
    """Integrated-gradients attribution of ``task``'s logit for ``target`` (default: the predicted class)
    to the input pixels; returns [B, H, W]: absolute attribution summed over colour channels."""
    from captum.attr import IntegratedGradients

    model.eval()
    if target is None:
        target = predicted_classes(model, images)[task]

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model(x).logits[task]

    ig = IntegratedGradients(forward)
    baseline = torch.zeros_like(images)
    attributions = ig.attribute(images, baselines=baseline, target=target, n_steps=steps,
                                internal_batch_size=max(len(images), 1) * 4)
    return attributions.abs().sum(dim=1).detach().cpu().numpy()


def display_images(images: torch.Tensor, backbone: Backbone) -> list[np.ndarray]:
    """Undo the backbone's normalisation: [B, 3, H, W] tensors -> H x W x 3 arrays in [0, 1]."""
    mean = torch.tensor(getattr(backbone.preprocess.transforms[-1], "mean", (0.5, 0.5, 0.5))).view(1, 3, 1, 1)
    std = torch.tensor(getattr(backbone.preprocess.transforms[-1], "std", (0.5, 0.5, 0.5))).view(1, 3, 1, 1)
    pixels = (images.detach().cpu() * std + mean).clamp(0, 1)
    return [p.permute(1, 2, 0).numpy() for p in pixels]


def load_images(paths: list[str], backbone: Backbone) -> torch.Tensor:
    """Image files -> a preprocessed batch on the backbone's device."""
    from faceprompt.data.images import load_rgb

    return torch.stack([backbone.preprocess(load_rgb(p)) for p in paths]).to(backbone.device)


def attention_summary(models: dict[str, PromptModel], images: torch.Tensor) -> "list[dict]":
    """Per method and task: mean share of the pooled attention on prompt tokens, on the prefix token,
    and the entropy of the patch attention (lower = more focused). Rows for a tidy DataFrame."""
    rows = []
    for name, model in models.items():
        for task in model.task_names:
            att = method_attention(model, images, task)
            p = att.patches.flatten(1)
            p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
            entropy = -(p * p.clamp_min(1e-12).log()).sum(-1)
            rows.append({"method": name, "task": task, "backbone": model.backbone.name, "family": model.backbone.family,
                         "prompt_share": float(att.prompt_share.mean()),
                         "prefix_share": float(att.prefix.sum(-1).mean()) if att.prefix.numel() else 0.0,
                         "patch_entropy": float(entropy.mean())})
    return rows
