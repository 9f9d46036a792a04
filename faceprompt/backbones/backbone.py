"""The frozen :class:`Backbone`: an open_clip model with the hooks prompt tuning needs.

This is the only module that touches tower internals (see the package's docstring for the hooks).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

import open_clip
from timm.models.eva import Eva

from faceprompt.backbones.registry import PRETRAINED_DIR, BackboneSpec
from faceprompt.backbones.weights import WeightsNotFoundError


def _sequence_major_self_attention(_module: nn.Module, args: tuple) -> tuple | None:
    """Hand a batch-first MultiheadAttention its input as a view of sequence-major memory.

    It transposes self-attention input to [L, B, E] before the packed q/k/v projection; on a
    batch-major tensor that projection runs as L small broadcast matmuls, on sequence-major
    memory as one. Same numbers; about a third off a CPU text pass with few prompts.
    """
    query, key, value = args[:3]
    if query is key and key is value and query.dim() == 3:
        view = query.transpose(0, 1).contiguous().transpose(0, 1)
        return (view, view, view, *args[3:])
    return None


@contextlib.contextmanager
def short_text(text_tower: nn.Module, length: int) -> Iterator[None]:
    """Let an open_clip text tower run on its first ``length`` positions: its causal mask is a
    fixed [context, context] buffer that must shrink with the input (positions are sliced already)."""
    full = getattr(text_tower, "attn_mask", None)
    if full is not None:
        text_tower.attn_mask = full[:length, :length]
    try:
        yield
    finally:
        if full is not None:
            text_tower.attn_mask = full


class Backbone(nn.Module):
    """A frozen open_clip model with prompt hooks. Its parameters never train."""

    def __init__(self, spec: BackboneSpec, model: nn.Module, preprocess: Callable, weights_id: str):
        super().__init__()
        self.spec = spec
        self.model = model
        self.preprocess = preprocess
        self.weights_id = weights_id
        self._tokenizer = None
        self._compiled: Callable | None = None  # the image path under torch.compile (compile_image_path)
        self.compile_mode = "off"
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()
        visual = model.visual
        if not hasattr(visual, "trunk"):
            raise TypeError(f"backbone {spec.name!r}: expected a timm vision tower (open_clip TimmModel)")
        self._trunk = visual.trunk
        self.is_eva = isinstance(self._trunk, Eva)
        for module in self._trunk.modules():  # timm may have been told (TIMM_FUSED_ATTN=0) to spell it out
            if hasattr(module, "fused_attn"):
                module.fused_attn = True
        for block in getattr(getattr(model.text, "transformer", None), "resblocks", []):
            if isinstance(getattr(block, "attn", None), nn.MultiheadAttention) and block.attn.batch_first:
                block.attn.register_forward_pre_hook(_sequence_major_self_attention)

    # A frozen backbone stays in eval mode (no dropout, fixed norms) whatever its owner does.
    def train(self, mode: bool = True) -> "Backbone":
        super().train(False)
        return self

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def width(self) -> int:
        """Vision tower token width (what a visual prompt token is)."""
        return self._trunk.embed_dim

    @property
    def depth(self) -> int:
        return len(self._trunk.blocks)

    @property
    def num_prefix_tokens(self) -> int:
        return self._trunk.num_prefix_tokens

    @property
    def num_patches(self) -> int:
        return self._trunk.patch_embed.num_patches

    @property
    def patch_size(self) -> tuple[int, int]:
        """Pixels per patch (height, width)."""
        return tuple(self._trunk.patch_embed.patch_size)

    @property
    def patch_grid(self) -> tuple[int, int]:
        """Patches per image (rows, columns)."""
        return tuple(self._trunk.patch_embed.grid_size)

    def attention_kernels(self) -> dict[str, bool]:
        """{vision attention layer: whether it runs PyTorch's fused scaled-dot-product kernel}."""
        return {name: bool(m.fused_attn) for name, m in self._trunk.named_modules() if hasattr(m, "fused_attn")}

    @property
    def has_attention_pool(self) -> bool:
        return getattr(self._trunk, "attn_pool", None) is not None

    def patch_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen patch embedding of each image, before positions: [B, patches, W] (no gradient)."""
        with torch.no_grad():
            patches = self._trunk.patch_embed(images)
        return patches.flatten(1, -2) if patches.dim() > 3 else patches

    @property
    def text_width(self) -> int:
        return self.text_tower.token_embedding.embedding_dim

    @property
    def embed_dim(self) -> int:
        return self.model.text.text_projection.out_features if isinstance(
            self.model.text.text_projection, nn.Linear) else self.model.text.text_projection.shape[1]

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return size[0] if isinstance(size, (tuple, list)) else int(size)

    @property
    def context_length(self) -> int:
        return self.text_tower.context_length

    @property
    def text_tower(self) -> nn.Module:
        return self.model.text

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()

    @property
    def log_logit_scale(self) -> torch.Tensor:
        """The tower's own t in exp(t) * cos (the stored parameter, before exp)."""
        return self.model.logit_scale

    @property
    def logit_bias(self) -> torch.Tensor | None:
        return self.model.logit_bias

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    def num_parameters(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"total": count(self.model), "vision": count(self.model.visual), "text": count(self.model.text)}

    # --- text ----------------------------------------------------------------------------------

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            name = self.spec.model_name
            if self.spec.local_dir:
                name = f"local-dir:{PRETRAINED_DIR / self.spec.local_dir}"
            try:
                self._tokenizer = open_clip.get_tokenizer(name)
            except Exception as err:
                raise WeightsNotFoundError(
                    f"backbone {self.name!r}: its tokenizer could not be loaded ({type(err).__name__}: {err}); "
                    f"SigLIP2's Gemma tokenizer comes from the HF hub: cache it once online, then set HF_HUB_OFFLINE=1"
                ) from err
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer) -> None:
        """Another tokenizer with the same call (texts, context_length=) -> ids, e.g. for timing."""
        self._tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        return self.text_tower.token_embedding.num_embeddings

    def token_embeddings(self, ids: list[int] | torch.Tensor) -> torch.Tensor:
        """The frozen word embeddings [len(ids), text width] of token ids (a copy, no gradient)."""
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        with torch.no_grad():
            return self.text_tower.token_embedding.weight[ids].clone()

    def special_token_ids(self) -> set[int]:
        """Ids of the tokenizer's structural tokens (start, end, padding, ...), never words.

        open_clip's SimpleTokenizer lists its start/end ids; HF tokenizers (SigLIP2's Gemma, wrapped
        by open_clip's HFTokenizer) list theirs, end-of-sequence included, on the wrapped tokenizer.
        """
        tokenizer = self.tokenizer
        ids = set()
        for source in (tokenizer, getattr(tokenizer, "tokenizer", None)):
            ids.update(int(i) for i in (getattr(source, "all_special_ids", None) or ()))
            for name in ("sot_token_id", "eot_token_id", "eos_token_id", "bos_token_id", "pad_token_id"):
                if isinstance(getattr(source, name, None), int):
                    ids.add(getattr(source, name))
        if getattr(tokenizer, "pad_id", None) is not None:
            ids.add(int(tokenizer.pad_id))
        return ids

    @property
    def context_start(self) -> int:
        """First token position that learnable context may overwrite: after a start token, if any."""
        return 1 if isinstance(self.tokenizer, open_clip.tokenizer.SimpleTokenizer) else 0

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(list(texts), context_length=self.context_length).to(self.device)

    def tokenize_with_context(self, texts: list[str], n_ctx: int) -> torch.Tensor:
        """Tokens with ``n_ctx`` placeholder slots at ``context_start`` before each text's own tokens."""
        tokens = self.tokenize(texts)
        if n_ctx == 0:
            return tokens
        start, length = self.context_start, tokens.shape[1]
        placeholder = int(self.tokenize(["X"])[0, start])
        pad = 0 if getattr(self.tokenizer, "pad_id", None) is None else int(self.tokenizer.pad_id)
        lost = tokens[:, length - n_ctx:]
        if (lost != pad).any():
            row = int((lost != pad).any(dim=1).nonzero()[0])
            raise ValueError(
                f"prompt {texts[row]!r} plus {n_ctx} context tokens does not fit the text context length {length}"
            )
        out = torch.full_like(tokens, pad)
        out[:, :start] = tokens[:, :start]
        out[:, start:start + n_ctx] = placeholder
        out[:, start + n_ctx:] = tokens[:, start:length - n_ctx]
        return out

    def text_extent(self, tokens: torch.Tensor) -> int | None:
        """Positions the pooled text feature can depend on, when fewer than the context length.

        A causal tower pooling at the end token never lets a later position reach the pooled
        one, so running it on ``tokens[:, :extent]`` is exact. Towers without a causal mask
        (SigLIP2) or with a pad mask get ``None``: every position matters there.
        """
        text = self.text_tower
        pool = getattr(text, "pool_type", None)
        if (getattr(text, "attn_mask", None) is None or getattr(text, "use_pad_mask", False)
                or getattr(text, "cls_emb", None) is not None or pool not in ("argmax", "eos")):
            return None
        if pool == "argmax":
            ends = tokens.argmax(dim=-1)
        else:
            ends = (tokens == text.eos_id).int().argmax(dim=-1)
        extent = int(ends.max()) + 1
        return extent if extent < tokens.shape[1] else None

    def encode_text(self, tokens: torch.Tensor, context: torch.Tensor | None = None,
                    normalize: bool = False) -> torch.Tensor:
        """Text features; ``context`` [M, W] or [N, M, W] overwrites the placeholder embeddings.

        On causal towers the positions after the last end token are dropped first (exact, and
        PE-Core's class prompts then cost about two thirds of a full-length pass).
        """
        extent = self.text_extent(tokens)
        if extent is not None:
            with short_text(self.text_tower, extent):
                return self._encode_text(tokens[:, :extent], context, normalize)
        return self._encode_text(tokens, context, normalize)

    def _encode_text(self, tokens: torch.Tensor, context: torch.Tensor | None, normalize: bool) -> torch.Tensor:
        if context is None:
            return self.model.encode_text(tokens, normalize=normalize)
        n_ctx = context.shape[-2]
        if context.dim() == 2:
            context = context.unsqueeze(0)
        if context.shape[-1] != self.text_width:
            raise ValueError(f"context width {context.shape[-1]} != text width {self.text_width} of {self.name}")
        start = self.context_start

        def write_context(_module, _inputs, embeddings):
            ctx = context.to(embeddings.dtype).expand(embeddings.shape[0], -1, -1)
            return torch.cat([embeddings[:, :start], ctx, embeddings[:, start + n_ctx:]], dim=1)

        handle = self.text_tower.token_embedding.register_forward_hook(write_context)
        try:
            return self.model.encode_text(tokens, normalize=normalize)
        finally:
            handle.remove()

    # --- image ---------------------------------------------------------------------------------

    def _layer_prompts(self, prompts: torch.Tensor, batch: int, deep: bool) -> torch.Tensor:
        """Normalise prompts to [B, D, tokens, W] (deep) or [B, 1, tokens, W] (shallow)."""
        if deep:
            if prompts.dim() == 3:
                prompts = prompts.unsqueeze(0)
            if prompts.dim() != 4 or prompts.shape[1] != self.depth:
                raise ValueError(f"deep prompts must be [depth={self.depth}, tokens, W] or [B, depth, tokens, W], "
                                 f"got {tuple(prompts.shape)}")
        else:
            if prompts.dim() == 2:
                prompts = prompts.unsqueeze(0)
            if prompts.dim() != 3:
                raise ValueError(f"shallow prompts must be [tokens, W] or [B, tokens, W], got {tuple(prompts.shape)}")
            prompts = prompts.unsqueeze(1)
        if prompts.shape[-1] != self.width:
            raise ValueError(f"prompt width {prompts.shape[-1]} != vision width {self.width} of {self.name}")
        if prompts.shape[0] not in (1, batch):
            raise ValueError(f"prompts for {prompts.shape[0]} images, but the batch has {batch}")
        return prompts.expand(batch, -1, -1, -1)

    @contextlib.contextmanager
    def _rope_prefix(self, tokens: int) -> Iterator[None]:
        # Eva applies RoPE to tokens after num_prefix_tokens: prompts must count as prefix, or shapes clash.
        if not self.is_eva or tokens == 0:
            yield
            return
        attns = [blk.attn for blk in self._trunk.blocks]
        saved = [a.num_prefix_tokens for a in attns]
        for a, n in zip(attns, saved):
            a.num_prefix_tokens = n + tokens
        try:
            yield
        finally:
            for a, n in zip(attns, saved):
                a.num_prefix_tokens = n

    def image_tokens(self, images: torch.Tensor, prompts: torch.Tensor | None = None,
                     deep: bool = False) -> torch.Tensor:
        """Final-norm token sequence [B, prefix + tokens + patches, W] (for pooling or attribution)."""
        trunk = self._trunk
        # The patch projection leaves [B, N, W] as a transposed view of the conv output; without a cls token
        # to concatenate (SigLIP2), every residual add would keep that width-major layout through all blocks.
        x = trunk.patch_embed(images).contiguous()
        if self.is_eva:
            x, rope = trunk._pos_embed(x)
        else:
            x, rope = trunk.patch_drop(trunk._pos_embed(x)), None
        n_pre = trunk.num_prefix_tokens
        if prompts is None:
            layer_prompts, tokens = None, 0
        else:
            layer_prompts = self._layer_prompts(prompts.to(x.dtype), x.shape[0], deep)
            tokens = layer_prompts.shape[2]  # per layer, as VPTConfig.tokens counts them
            x = torch.cat([x[:, :n_pre], layer_prompts[:, 0], x[:, n_pre:]], dim=1)
        x = trunk.norm_pre(x)
        with self._rope_prefix(tokens):
            for i, block in enumerate(trunk.blocks):
                if deep and i > 0 and tokens:
                    x = torch.cat([x[:, :n_pre], layer_prompts[:, i], x[:, n_pre + tokens:]], dim=1)
                x = block(x, rope=rope) if self.is_eva else block(x)
        return trunk.norm(x)

    def pool_tokens(self, sequence: torch.Tensor, tokens: int = 0, pool_prompts: bool = True) -> torch.Tensor:
        """The tower's head over ``sequence`` from :meth:`image_tokens`, which holds ``tokens`` prompt tokens."""
        if tokens and not pool_prompts:
            n_pre = self.num_prefix_tokens
            sequence = torch.cat([sequence[:, :n_pre], sequence[:, n_pre + tokens:]], dim=1)
        return self.model.visual.head(self._trunk.forward_head(sequence))

    def pool_attention(self, tokens: torch.Tensor) -> torch.Tensor:
        """The attention-pool (MAP) head's softmax weights over ``tokens`` [B, N, W] from :meth:`image_tokens`:
        [B, N], the mean over heads and latent queries. Computed as timm's ``AttentionPoolLatent`` does."""
        pool = getattr(self._trunk, "attn_pool", None)
        if pool is None:
            raise ValueError(f"backbone {self.name!r} has no attention-pool head to read")
        b, n, c = tokens.shape
        if getattr(pool, "pos_embed", None) is not None:
            tokens = tokens + pool.pos_embed.unsqueeze(0).to(tokens.dtype)
        heads = pool.num_heads
        latent = pool.latent.expand(b, -1, -1)
        q = pool.q(latent).reshape(b, latent.shape[1], heads, c // heads).transpose(1, 2)
        k = pool.kv(tokens).reshape(b, n, 2, heads, c // heads).permute(2, 0, 3, 1, 4)[0]
        q, k = pool.q_norm(q), pool.k_norm(k)
        weights = ((q * pool.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # [B, heads, latents, N]
        return weights.mean(dim=(1, 2))

    def encode_image(self, images: torch.Tensor, prompts: torch.Tensor | None = None, deep: bool = False,
                     pool_prompts: bool = True, normalize: bool = False) -> torch.Tensor:
        """Image features, optionally with visual prompts ([tokens, W] or [B, tokens, W]; deep: [D, tokens, W] or
        [B, D, tokens, W]).

        Zero-shot and every prompt method take this one path (:meth:`image_tokens`, then the tower's own
        head): the same fused-attention blocks, the same token layout; without prompts it equals open_clip's
        ``model.encode_image`` up to float rounding (tests/test_backbones.py).
        """
        features = (self._compiled or self._image_features)(images, prompts, deep, pool_prompts)
        return F.normalize(features, dim=-1) if normalize else features

    def _image_features(self, images: torch.Tensor, prompts: torch.Tensor | None, deep: bool,
                        pool_prompts: bool) -> torch.Tensor:
        sequence = self.image_tokens(images, prompts, deep)
        return self.pool_tokens(sequence, 0 if prompts is None else prompts.shape[-2], pool_prompts)

    COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")

    def compile_image_path(self, mode: str = "default") -> "Backbone":
        """Run the image path (every method's, prompts included, forward and backward) through ``torch.compile``.

        The first call of each input shape and prompt layout compiles (tens of seconds); later calls reuse it.
        ``"reduce-overhead"`` adds CUDA graphs: a fixed batch shape then launches as one replay, for
        batch-1 latency on a GPU. ``"off"`` returns to eager.
        """
        if mode not in self.COMPILE_MODES:
            raise ValueError(f"compile mode {mode!r}: choose from {list(self.COMPILE_MODES)}")
        if mode == "reduce-overhead" and self.device.type != "cuda":
            raise ValueError(f"compile mode 'reduce-overhead' (CUDA graphs) needs a CUDA device, not {self.device}")
        if mode != "off":
            import torch._dynamo

            # One graph per batch shape and prompt layout (zero-shot, shallow, deep, per-image): a benchmark over
            # methods and batch sizes needs more than torch's default 8 before it falls back to eager.
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self._compiled = None if mode == "off" else torch.compile(
            self._image_features, mode=None if mode == "default" else mode, dynamic=False)
        self.compile_mode = mode
        return self

    def logits(self, image_features: torch.Tensor, text_features: torch.Tensor,
               log_scale: torch.Tensor | None = None) -> torch.Tensor:
        """exp(t) * cos(image, text) (+ b on sigmoid-trained towers): [B, C], always in fp32.

        ``log_scale``: a learned t in place of the tower's own. Under bf16/fp16 autocast the
        features arrive in half precision; the cosine, the scale (~100) and the bias are computed
        in fp32, as half precision keeps ~3 digits and the scale multiplies the rounding error.
        """
        with _full_precision(image_features.device):
            img = F.normalize(image_features.float(), dim=-1)
            txt = F.normalize(text_features.float(), dim=-1)
            scale = self.logit_scale if log_scale is None else log_scale.exp()
            out = scale.float() * img @ txt.transpose(-1, -2)
            if self.logit_bias is not None:
                out = out + self.logit_bias.float()
        return out


def _full_precision(device: torch.device):
    """A context where autocast is off on ``device`` (a no-op on devices autocast does not know)."""
    if device.type in ("cpu", "cuda", "xpu", "mps"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()

