"""Visual prompts: none (the frozen image path) and VPT / VPT-TS; V2PT, built on VPT's prompts, is in v2pt.py."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from faceprompt.prompts.base import MethodPreset, PromptConfig, VisualPrompt, register_method, register_visual_prompt


# Visual prompt tokens a method may add: VPT's papers use 1 to 200; past this they dwarf any image's patches.
MAX_VISUAL_TOKENS = 1024


@dataclass(frozen=True)
class NoVisualConfig(PromptConfig):
    pass


@register_visual_prompt("none")
class NoVisualPrompt(VisualPrompt):
    """The frozen image encoder, untouched: its features can be cached."""

    config_class = NoVisualConfig
    touches_image_path = False

    def forward(self, images):
        return self.backbone.encode_image(images), {}


@dataclass(frozen=True)
class VPTConfig(PromptConfig):
    tokens: int = 10  # prompt tokens in each set (in each layer when deep)
    deep: bool = False  # fresh prompts before every block
    task_specific: bool = False  # VPT-TS: one prompt set (and one pass) per task
    batched: bool = True  # VPT-TS: all tasks' passes as one batch of B x T
    pool_prompts: bool = True  # whether the attention-pool head sees the prompt tokens
    dropout: float = 0.0
    # VPT's uniform Xavier; "normal": a standard normal, as the thesis's prompts. Not "init": a flat
    # option reaches the visual part first, and "init" already names the text context's start.
    prompt_init: str = "xavier"
    train_logit_scale: bool = False  # learn t in exp(t) * cos, starting from the tower's own

    def validate(self, where: str = "config") -> None:
        if not 1 <= self.tokens <= MAX_VISUAL_TOKENS:
            raise ValueError(f"{where}: field 'tokens' must be from 1 to {MAX_VISUAL_TOKENS} (VPT uses 1 to a few "
                             f"hundred; more would outnumber a 224-px image's patches many times), got {self.tokens}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{where}: field 'dropout' must be in [0, 1), got {self.dropout}")
        if self.prompt_init not in ("xavier", "normal"):
            raise ValueError(f"{where}: field 'prompt_init' must be 'xavier' or 'normal', got {self.prompt_init!r}")


def _xavier_prompts(sets: int, layers: int, tokens: int, width: int, patch_dim: int) -> torch.Tensor:
    # VPT's init: uniform Xavier over (patch dim, width), as the prompts live in patch-embedding space.
    bound = math.sqrt(6.0 / float(patch_dim + width))
    return torch.empty(sets, layers, tokens, width).uniform_(-bound, bound)


@register_visual_prompt("vpt")
class VPTPrompt(VisualPrompt):
    """``tokens`` learnable tokens after the prefix tokens; one set for all tasks, or one per task (VPT-TS)."""

    config_class = VPTConfig

    def __init__(self, cfg: VPTConfig, backbone, tasks):
        super().__init__(cfg, backbone, tasks)
        sets = len(tasks) if cfg.task_specific else 1
        layers = backbone.depth if cfg.deep else 1
        patch = backbone.patch_size
        patch_dim = 3 * patch[0] * patch[1]
        # [sets, layers, tokens, W]
        if cfg.prompt_init == "normal":
            prompts = torch.randn(sets, layers, cfg.tokens, backbone.width)
        else:
            prompts = _xavier_prompts(sets, layers, cfg.tokens, backbone.width, patch_dim)
        self.prompts = nn.Parameter(prompts.to(backbone.device))
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.train_logit_scale:
            self.log_scale = nn.Parameter(backbone.log_logit_scale.detach().clone())

    def logit_log_scale(self) -> torch.Tensor | None:
        return self.log_scale if self.cfg.train_logit_scale else None

    def prompt_set(self, index: int) -> torch.Tensor:
        p = self.drop(self.prompts[index])
        return p if self.cfg.deep else p[0]

    def prompts_for(self, images: torch.Tensor, task: str) -> tuple[torch.Tensor, bool]:
        index = self.task_index(task)
        prompts = self.prompts[index if self.cfg.task_specific else 0]  # no dropout, as at evaluation
        return (prompts if self.cfg.deep else prompts[0]), self.cfg.deep

    def encode(self, images: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_image(images, prompts, deep=self.cfg.deep, pool_prompts=self.cfg.pool_prompts)

    def forward(self, images):
        if not self.cfg.task_specific:
            return self.encode(images, self.prompt_set(0)), {}
        if not self.cfg.batched:
            return {t.name: self.encode(images, self.prompt_set(i)) for i, t in enumerate(self.tasks)}, {}
        return self.forward_batched(images), {}

    def forward_batched(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """All tasks in one pass: the batch repeated T times, each copy with its task's prompts."""
        n_tasks, batch = len(self.tasks), images.shape[0]
        repeated = images.repeat(n_tasks, *([1] * (images.dim() - 1)))  # [T*B, ...], task-major
        per_image = torch.stack([self.prompt_set(i) for i in range(n_tasks)])  # [T, (D,) tokens, W]
        per_image = per_image.repeat_interleave(batch, dim=0)  # [T*B, (D,) tokens, W]
        features = self.encode(repeated, per_image).view(n_tasks, batch, -1)
        return {t.name: features[i] for i, t in enumerate(self.tasks)}



register_method(MethodPreset("vpt", "templates", "vpt", summary="VPT: one set of visual tokens for all tasks"))
register_method(MethodPreset("vpt-ts", "templates", "vpt", visual_defaults={"task_specific": True},
                             summary="VPT-TS: one set of visual tokens per task"))
