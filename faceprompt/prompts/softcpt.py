"""SoftCPT-CATS: each task's context generated from its description by a shared meta-network.

Its context machinery (token layouts, phrase starts, the truncate option) is CoOp's, in coop.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceprompt.prompts.base import MethodPreset, PromptConfig, register_method, register_text_prompt
from faceprompt.prompts.coop import (
    _check_wording, _ContextPrompt, _phrase_embedding, _TruncateOption, tokens_with_context,
)
from faceprompt.tasks import worded


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


register_method(MethodPreset("softcpt", "softcpt", "none",
                             summary="SoftCPT-CATS: context generated from the task description"))
