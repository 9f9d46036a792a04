"""Visual prompts: none (frozen image path), VPT / VPT-TS, and V2PT (VPT + VAE per-image prompts)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from faceprompt.prompts.base import PromptConfig, VisualPrompt, register_visual_prompt


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
    tokens: int = 10  # P
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
    """P learnable tokens after the prefix tokens; one set for all tasks, or one per task (VPT-TS)."""

    config_class = VPTConfig

    def __init__(self, cfg: VPTConfig, backbone, tasks):
        super().__init__(cfg, backbone, tasks)
        sets = len(tasks) if cfg.task_specific else 1
        layers = backbone.depth if cfg.deep else 1
        patch = backbone.patch_size
        patch_dim = 3 * patch[0] * patch[1]
        # [sets, layers, P, W]
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
        per_image = torch.stack([self.prompt_set(i) for i in range(n_tasks)])  # [T, (D,) P, W]
        per_image = per_image.repeat_interleave(batch, dim=0)  # [T*B, (D,) P, W]
        features = self.encode(repeated, per_image).view(n_tasks, batch, -1)
        return {t.name: features[i] for i, t in enumerate(self.tasks)}


@dataclass(frozen=True)
class V2PTConfig(PromptConfig):
    tokens: int = 10  # P: prompt tokens per layer, learned and generated together
    deep: bool = True  # the paper adds the per-image prompts at each layer
    latent: int = 16  # VAE latent size
    hidden: int = 128  # encoder / decoder hidden width
    kl_weight: float = 1e-3  # beta in  CE + beta * KL(q || N(0, I))
    pool_prompts: bool = True
    # "add": one generated [P, W] offset added to the P learned prompts of every layer;
    # "split": the paper's form, P - P_ins learned domain prompts followed by P_ins generated instance
    # prompts, so the token count stays P.
    combine: str = "add"
    instance_tokens: int = 5  # P_ins ("split" only)

    def validate(self, where: str = "config") -> None:
        if self.tokens < 1 or self.latent < 1 or self.hidden < 1:
            raise ValueError(f"{where}: fields 'tokens', 'latent' and 'hidden' must be >= 1")
        if self.kl_weight < 0:
            raise ValueError(f"{where}: field 'kl_weight' must be >= 0, got {self.kl_weight}")
        if self.combine not in ("add", "split"):
            raise ValueError(f"{where}: field 'combine' must be 'add' or 'split', got {self.combine!r}")
        if self.combine == "split" and not 1 <= self.instance_tokens < self.tokens:
            raise ValueError(f"{where}: field 'instance_tokens' must be in [1, tokens - 1] = "
                             f"[1, {self.tokens - 1}], got {self.instance_tokens}")


@register_visual_prompt("v2pt")
class V2PTPrompt(VisualPrompt):
    """Learned prompts + VAE prompts generated from the image's frozen patch embeddings.

    encoder: mean patch embedding -> MLP -> (mu, log sigma^2); z = mu + sigma * eps while training,
    z = mu at evaluation (deterministic); decoder: z -> MLP -> generated prompts, either added to the
    P learned prompts at every layer (``combine="add"``) or placed after P - P_ins learned domain
    prompts at every layer (``combine="split"``, the paper's: still P tokens). The KL term, already
    weighted by ``kl_weight``, is returned as ``aux['kl']``.
    """

    config_class = V2PTConfig

    def __init__(self, cfg: V2PTConfig, backbone, tasks):
        super().__init__(cfg, backbone, tasks)
        width = backbone.width
        layers = backbone.depth if cfg.deep else 1
        patch = backbone.patch_size
        split = cfg.combine == "split"
        self.generated_tokens = cfg.instance_tokens if split else cfg.tokens
        learned = cfg.tokens - cfg.instance_tokens if split else cfg.tokens
        self.prompts = nn.Parameter(
            _xavier_prompts(1, layers, learned, width, 3 * patch[0] * patch[1])[0].to(backbone.device))
        self.encoder = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, cfg.hidden), nn.GELU(),
                                     nn.Linear(cfg.hidden, 2 * cfg.latent))
        self.decoder = nn.Sequential(nn.Linear(cfg.latent, cfg.hidden), nn.GELU(),
                                     nn.Linear(cfg.hidden, self.generated_tokens * width))
        # Start with near-zero generated prompts: training begins from plain VPT.
        nn.init.zeros_(self.decoder[-1].weight)
        nn.init.zeros_(self.decoder[-1].bias)
        self.encoder.to(backbone.device)
        self.decoder.to(backbone.device)

    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = self.backbone.patch_embeddings(images)  # frozen: no graph needed through it
        mu, logvar = self.encoder(patches.mean(dim=1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    def image_prompts(self, z: torch.Tensor) -> torch.Tensor:
        """Learned + generated prompts per image from latents ``z``: [B, (layers,) P, W]."""
        batch, learned = z.shape[0], self.prompts.unsqueeze(0)  # [1, layers, learned, W]
        generated = self.decoder(z).view(batch, 1, self.generated_tokens, self.backbone.width)
        if self.cfg.combine == "add":
            prompts = learned + generated  # [B, layers, P, W]
        else:  # domain prompts, then the instance prompts (the same generated set at every layer)
            layers = learned.shape[1]
            prompts = torch.cat([learned.expand(batch, -1, -1, -1), generated.expand(-1, layers, -1, -1)], dim=2)
        return prompts if self.cfg.deep else prompts[:, 0]

    def prompts_for(self, images: torch.Tensor, task: str) -> tuple[torch.Tensor, bool]:
        self.task_index(task)
        mu, _ = self.posterior(images)  # evaluation uses the posterior mean
        return self.image_prompts(mu), self.cfg.deep

    def forward(self, images):
        mu, logvar = self.posterior(images)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        features = self.backbone.encode_image(images, self.image_prompts(z), deep=self.cfg.deep,
                                              pool_prompts=self.cfg.pool_prompts)
        aux = {}
        if self.training:
            kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1))
            aux["kl"] = self.cfg.kl_weight * kl
        return features, aux
