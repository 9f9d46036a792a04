"""The contrastive objective: CLIP's softmax loss or SigLIP's sigmoid loss over images x distinct captions."""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from faceprompt.pretraining.augment import Augmentation, augment, normalize
from faceprompt.pretraining.config import PretrainConfig
from faceprompt.pretraining.captions import caption_batch, caption_targets, pair_targets
from faceprompt.pretraining.data import Labels
from faceprompt.pretraining.model import short_text
from faceprompt.pretraining.prompt_loss import ClassPrompts, class_features, class_labels, prompt_loss


def sigmoid_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SigLIP: independent binary terms per (image, caption) pair, summed per image, averaged over images."""
    terms = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (terms * mask).sum() / logits.shape[0]


def clip_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric softmax loss, with several positives spread evenly where labels make them."""
    masked = logits.masked_fill(mask == 0, float("-inf"))

    def direction(lg: torch.Tensor, tg: torch.Tensor) -> torch.Tensor:
        rows = tg.sum(1) > 0
        log_p = F.log_softmax(lg[rows], dim=1)
        tg = tg[rows] / tg[rows].sum(1, keepdim=True)
        return -(tg * log_p.masked_fill(tg == 0, 0.0)).sum(1).mean()

    return 0.5 * (direction(masked, targets) + direction(masked.t(), targets.t()))


def contrastive_loss(kind: str, image_features: torch.Tensor, text_features: torch.Tensor,
                     logit_scale: torch.Tensor, logit_bias: torch.Tensor | None,
                     targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    img = F.normalize(image_features, dim=-1)
    txt = F.normalize(text_features, dim=-1)
    logits = logit_scale.exp() * img @ txt.t()
    if kind == "sigmoid":
        if logit_bias is not None:
            logits = logits + logit_bias
        return sigmoid_loss(logits, targets, mask)
    return clip_loss(logits, targets, mask)



class TokenCache:
    """Tokenized captions by text: the same few thousand captions recur all run long."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer = tokenizer
        self.context_length = context_length
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        new = [t for t in texts if t not in self._cache]
        if new:
            for text, tokens in zip(new, self.tokenizer(new, context_length=self.context_length)):
                self._cache[text] = tokens
        return torch.stack([self._cache[t] for t in texts])


@dataclass
class StepInputs:
    """One batch ready for the loss: augmented images, distinct caption tokens, targets and mask."""

    images: torch.Tensor
    tokens: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    class_labels: torch.Tensor  # [images, 3]: gender, age bin, emotion; -1 unlabelled

    def to(self, device: torch.device) -> "StepInputs":
        return StepInputs(*(t.to(device, non_blocking=True) for t in dataclasses.astuple(self)))


def prepare_step(images_u8: torch.Tensor, labels: Labels, tokens: TokenCache, cfg: PretrainConfig,
                 rng: random.Random, gen: torch.Generator, train: bool = True) -> StepInputs:
    captions = caption_batch(labels, rng)
    unique = list(dict.fromkeys(c.text for c in captions))
    if cfg.positives == "labels":
        by_text = {c.text: c for c in captions}
        targets, mask = caption_targets([by_text[t] for t in unique], labels)
    else:
        targets, mask = pair_targets(captions, unique)
    images = augment(images_u8, gen, Augmentation.from_config(cfg)) if train else normalize(images_u8)
    return StepInputs(images, tokens(unique), targets, mask,
                      class_labels(labels.gender, labels.age, labels.emotion))


def step_loss(model: nn.Module, inputs: StepInputs, kind: str, class_prompts: ClassPrompts | None = None,
              prompt_weight: float = 0.0, age_neighbour: float = 0.0) -> torch.Tensor:
    """The contrastive loss, plus ``prompt_weight`` x the zero-shot classifier's cross-entropy when
    ``class_prompts`` are given (both text sets go through the text tower in one pass)."""
    image_features = model.encode_image(inputs.images)
    with_prompts = class_prompts is not None and prompt_weight > 0
    tokens = inputs.tokens
    if with_prompts:
        tokens = torch.cat([tokens, class_prompts.tokens.to(tokens.device)])
    # Trailing columns that are padding in every caption change nothing under the causal mask: skip them.
    used = int((tokens != 0).any(0).nonzero().max()) + 1
    with short_text(model, used):
        text_features = model.encode_text(tokens[:, :used])
    captions = len(inputs.tokens)
    loss = contrastive_loss(kind, image_features, text_features[:captions], model.logit_scale,
                            getattr(model, "logit_bias", None), inputs.targets, inputs.mask)
    if with_prompts:
        features = class_features(text_features[captions:], class_prompts.layout)
        loss = loss + prompt_weight * prompt_loss(image_features, features, model.logit_scale,
                                                  inputs.class_labels, age_neighbour)
    return loss
