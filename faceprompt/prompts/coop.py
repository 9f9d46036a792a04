"""CoOp contexts, and the context machinery SoftCPT-CATS shares (softcpt.py generates its contexts).

Token layouts are built lazily, on first use, because SigLIP2's tokenizer comes
from the HF hub: counting a method's parameters must work without it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceprompt.prompts.base import MethodPreset, PromptConfig, TextPrompt, register_method, register_text_prompt
from faceprompt.tasks import WORDINGS, worded


class _TruncateOption:
    """``truncate`` is stored only when set: a run saved before the option existed still matches its config."""

    def to_dict(self) -> dict:
        data = super().to_dict()
        if not data.get("truncate"):
            data.pop("truncate", None)
        return data


@dataclass(frozen=True)
class CoOpConfig(_TruncateOption, PromptConfig):
    """CoOp: M learnable context vectors per task before the class words."""

    context_tokens: int = 16
    init: str = "random"  # "random" (N(0, 0.02)) or a phrase such as "a photo of a"
    class_specific: bool = False  # one context per class instead of one per task
    suffix: str = "."  # what follows the class words
    wording: str = "faceprompt"  # class words: faceprompt's, or "thesis" (its raw class names)
    # A prompt longer than the text context: False refuses it; True cuts its last words before the
    # end token, as the thesis's tokenizers do, and warns how many tokens were cut.
    truncate: bool = False

    def validate(self, where: str = "config") -> None:
        if self.context_tokens < 1:
            raise ValueError(f"{where}: field 'context_tokens' must be >= 1, got {self.context_tokens}")
        _check_wording(self.wording, where)


def _check_wording(wording: str, where: str) -> None:
    if wording not in WORDINGS:
        raise ValueError(f"{where}: field 'wording' must be one of {list(WORDINGS)}, got {wording!r}")


class _ContextPrompt(TextPrompt):
    """Shared machinery: class prompts 'X X ... X <class words>.' with X slots overwritten by context."""

    n_ctx: int

    def _class_tokens(self, task) -> torch.Tensor:
        key = f"_tokens_{task.name}"
        tokens = getattr(self, key, None)
        if tokens is None or tokens.device != self.backbone.device:
            words = worded(task, self.cfg.wording)
            texts = [f"{words.words(c)}{self.cfg.suffix}" for c in task.classes]
            tokens = tokens_with_context(self.backbone, texts, self.n_ctx, self.cfg.truncate)
            setattr(self, key, tokens)
        return tokens

    def _encode(self, task, context: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone.encode_text(self._class_tokens(task), context), dim=-1)


def tokens_with_context(backbone, texts: list[str], n_ctx: int, truncate: bool = False) -> torch.Tensor:
    """``backbone.tokenize_with_context``; with ``truncate``, a text that no longer fits loses its last
    tokens before the end token instead of being refused (one warning gives each cut text and the count)."""
    if not truncate or n_ctx == 0:
        return backbone.tokenize_with_context(texts, n_ctx)
    tokens = backbone.tokenize(texts)
    start, length = backbone.context_start, tokens.shape[1]
    pad = 0 if getattr(backbone.tokenizer, "pad_id", None) is None else int(backbone.tokenizer.pad_id)
    real = (tokens != pad).sum(dim=1)  # the tokenizers pad at the end only
    over = real + n_ctx - length
    if not bool((over > 0).any()):
        return backbone.tokenize_with_context(texts, n_ctx)
    if start + n_ctx + 1 >= length:
        raise ValueError(f"{n_ctx} context tokens leave no room for any word in the text context length {length}")
    special = backbone.special_token_ids()
    placeholder = int(backbone.tokenize(["X"])[0, start])
    out = torch.full_like(tokens, pad)
    out[:, :start] = tokens[:, :start]
    out[:, start:start + n_ctx] = placeholder
    out[:, start + n_ctx:] = tokens[:, start:length - n_ctx]
    cut = []
    for row in (over > 0).nonzero().flatten().tolist():
        end = int(tokens[row, int(real[row]) - 1])
        if end in special:  # the end token stays last, where the text tower pools
            out[row, -1] = end
        cut.append(f"{texts[row]!r} lost {int(over[row])}")
    warnings.warn(f"{len(cut)} of {len(texts)} prompts with {n_ctx} context tokens overflow the text context "
                  f"length {length} and were truncated, as the thesis's tokenizer does (tokens cut before the "
                  f"end token): " + "; ".join(cut), stacklevel=2)
    return out


def _phrase_embedding(backbone, phrase: str, n_ctx: int, align: str = "left") -> torch.Tensor:
    """Word embeddings of a phrase, trimmed or padded with N(0, 0.02) to n_ctx vectors.

    ``align="right"`` puts the padding first, so the phrase ends next to the class words."""
    # Token ids stay on the CPU: the backbone may live on "meta" (parameter counting) or a GPU.
    tokens = backbone.tokenizer([phrase], context_length=backbone.context_length)[0]
    # Only the phrase's words: SigLIP2's tokenizer ends a text with an end-of-sequence token that a
    # context must not carry into the middle of a prompt; PE-Core's has start and end tokens.
    special = backbone.special_token_ids()
    ids = [int(t) for t in tokens[backbone.context_start:] if int(t) != 0 and int(t) not in special]
    ids = ids[-n_ctx:] if align == "right" else ids[:n_ctx]
    emb = backbone.token_embeddings(ids)
    if emb.shape[0] < n_ctx:
        pad = torch.randn(n_ctx - emb.shape[0], emb.shape[1], device=emb.device) * 0.02
        emb = torch.cat([pad, emb] if align == "right" else [emb, pad])
    return emb


@register_text_prompt("coop")
class CoOpPrompt(_ContextPrompt):
    """Learnable context per task (or per class); the single-task baseline run for all tasks."""

    config_class = CoOpConfig

    def __init__(self, cfg: CoOpConfig, backbone, tasks):
        super().__init__(cfg, backbone, tasks)
        self.n_ctx = cfg.context_tokens
        width = backbone.text_width
        self.context = nn.ParameterDict()
        for task in tasks:
            shape = (task.num_classes, self.n_ctx, width) if cfg.class_specific else (self.n_ctx, width)
            if cfg.init == "random":
                init = torch.randn(shape) * 0.02
            else:
                init = _phrase_embedding(backbone, cfg.init, self.n_ctx).expand(shape).clone()
            self.context[task.name] = nn.Parameter(init.to(backbone.device))

    def class_features(self) -> dict[str, torch.Tensor]:
        return {task.name: self._encode(task, self.context[task.name]) for task in self.tasks}


register_method(MethodPreset("coop", "coop", "none", summary="CoOp: learnable context per task"))
