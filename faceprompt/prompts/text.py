"""Text prompts: hand-written templates (zero-shot), CoOp contexts, SoftCPT-CATS generated contexts.

Token layouts are built lazily, on first use, because SigLIP2's tokenizer comes
from the HF hub: counting a method's parameters must work without it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceprompt.prompts.base import PromptConfig, TextPrompt, register_text_prompt
from faceprompt.tasks import CLASS_SENTENCES, WORDINGS, class_sentences, worded


@dataclass(frozen=True)
class TemplatesConfig(PromptConfig):
    """Zero-shot class prompts: each task's templates (or these), ensembled by averaging features."""

    templates: tuple[str, ...] | None = None  # None: each task's own templates
    ensemble: bool = True  # False: only the first template
    sentences: str | None = None  # a named set of one sentence per class instead ("thesis")

    def validate(self, where: str = "config") -> None:
        if self.templates is not None and (not self.templates or any("{}" not in t for t in self.templates)):
            raise ValueError(f"{where}: field 'templates': every template needs a '{{}}' placeholder")
        if self.sentences is not None:
            if self.sentences not in CLASS_SENTENCES:
                raise ValueError(f"{where}: field 'sentences' must be one of {sorted(CLASS_SENTENCES)}, "
                                 f"got {self.sentences!r}")
            if self.templates is not None:
                raise ValueError(f"{where}: fields 'sentences' and 'templates' exclude each other")


@register_text_prompt("templates")
class TemplatePrompt(TextPrompt):
    """Frozen prompts from templates; nothing trains."""

    config_class = TemplatesConfig

    def templates_for(self, task) -> tuple[str, ...]:
        templates = self.cfg.templates or task.templates
        return templates if self.cfg.ensemble else templates[:1]

    def class_features(self) -> dict[str, torch.Tensor]:
        if self.cfg.sentences is not None:
            return {task.name: self.backbone.encode_text(
                self.backbone.tokenize(class_sentences(self.cfg.sentences, task)), normalize=True)
                for task in self.tasks}
        out = {}
        for task in self.tasks:
            per_template = []
            for template in self.templates_for(task):
                tokens = self.backbone.tokenize(task.prompts(template))
                per_template.append(F.normalize(self.backbone.encode_text(tokens), dim=-1))
            out[task.name] = F.normalize(torch.stack(per_template).mean(0), dim=-1)
        return out


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


@dataclass(frozen=True)
class SoftCPTConfig(_TruncateOption, PromptConfig):
    """SoftCPT-CATS: a shared meta-network turns each task description into that task's context.

    The defaults are faceprompt's form; the thesis's form (Codice-Tesi, wrappers/promptopt/
    prompt_learner.py) is ``task_context="per_task", generator_bias=False, generator_init="normal",
    normalize_task_features=False, wording="thesis"`` with ``context_tokens == task_context_tokens``
    (its one n_ctx, 15/20/25).
    """

    context_tokens: int = 16  # M: context vectors generated per task, shared by its classes
    task_context_tokens: int = 16  # L: learnable tokens before the task description
    task_context: str = "shared"  # "shared": one [L, W] set for all tasks; "per_task": [T, L, W]
    generator: str = "linear"  # "linear" (official code, thesis) or "mlp"
    hidden: int = 512  # MLP hidden width
    generator_bias: bool = True  # False: the last layer has no bias (the thesis's bias-free map)
    generator_init: str = "scaled"  # last layer N(0, 0.02/sqrt(E)); "normal": N(0, 0.02), the thesis's
    normalize_task_features: bool = True  # False: the generator reads the raw (unnormalised) features
    wording: str = "faceprompt"  # class words and task descriptions: faceprompt's or "thesis"
    init: str = "random"  # "random", or a phrase such as "a photo of a" that every task's context starts from
    suffix: str = "."
    truncate: bool = False  # as CoOpConfig.truncate, for the class prompts and the task descriptions

    def validate(self, where: str = "config") -> None:
        if self.context_tokens < 1 or self.task_context_tokens < 0:
            raise ValueError(f"{where}: fields 'context_tokens' >= 1 and 'task_context_tokens' >= 0 required")
        choices = {"generator": ("linear", "mlp"), "task_context": ("shared", "per_task"),
                   "generator_init": ("scaled", "normal")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{where}: field {name!r} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.init != "random" and not self.generator_bias:
            raise ValueError(f"{where}: field 'init': a phrase start lives in the generator's bias; "
                             f"it needs generator_bias: true")
        _check_wording(self.wording, where)


@register_text_prompt("softcpt")
class SoftCPTPrompt(_ContextPrompt):
    """Meta-network = frozen text encoder over [task-context tokens; task description] + learnable generator.

    Class-agnostic, task-specific (CATS): one generated context per task, shared by all its
    classes. Only the task-context tokens (one set, or one per task) and the generator train.
    """

    config_class = SoftCPTConfig

    def __init__(self, cfg: SoftCPTConfig, backbone, tasks):
        super().__init__(cfg, backbone, tasks)
        self.n_ctx = cfg.context_tokens
        width, embed = backbone.text_width, backbone.embed_dim
        shape = (len(tasks),) if cfg.task_context == "per_task" else ()
        self.task_context = nn.Parameter(
            torch.randn(*shape, cfg.task_context_tokens, width, device=backbone.device) * 0.02)
        out = cfg.context_tokens * width
        if cfg.generator == "linear":
            self.generator = nn.Linear(embed, out, bias=cfg.generator_bias)
        else:
            self.generator = nn.Sequential(nn.Linear(embed, cfg.hidden), nn.GELU(),
                                           nn.Linear(cfg.hidden, out, bias=cfg.generator_bias))
        self._init_generator(embed)
        self.generator.to(backbone.device)

    def _init_generator(self, embed: int) -> None:
        last = self.generator if self.cfg.generator == "linear" else self.generator[-1]
        if self.cfg.generator_init == "normal":
            nn.init.normal_(last.weight, std=0.02)  # the thesis's PromptGen: N(0, 0.02), no bias
        else:
            # Small initial contexts: the class words dominate at the start, as in zero-shot.
            nn.init.normal_(last.weight, std=0.02 / embed ** 0.5)
        if last.bias is None:
            return
        if self.cfg.init == "random":
            nn.init.normal_(last.bias, std=0.02)
        else:
            # With a phrase, the bias holds its word embeddings: training starts from that prompt.
            with torch.no_grad():
                last.bias.copy_(_phrase_embedding(self.backbone, self.cfg.init, self.n_ctx, align="right").flatten())

    def task_features(self) -> torch.Tensor:
        """Meta-network input: frozen-encoder features of '[task context] description' per task [T, E]."""
        tokens = getattr(self, "_description_tokens", None)
        if tokens is None or tokens.device != self.backbone.device:
            tokens = tokens_with_context(self.backbone, [worded(t, self.cfg.wording).description for t in self.tasks],
                                         self.cfg.task_context_tokens, self.cfg.truncate)
            self._description_tokens = tokens
        context = self.task_context if self.cfg.task_context_tokens else None
        features = self.backbone.encode_text(tokens, context)
        return F.normalize(features, dim=-1) if self.cfg.normalize_task_features else features

    def contexts(self) -> torch.Tensor:
        """Generated context vectors per task [T, M, W]."""
        feats = self.task_features()
        return self.generator(feats).view(len(self.tasks), self.n_ctx, self.backbone.text_width)

    def class_features(self) -> dict[str, torch.Tensor]:
        contexts = self.contexts()
        return {task.name: self._encode(task, contexts[i]) for i, task in enumerate(self.tasks)}
