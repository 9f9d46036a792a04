"""Frozen SigLIP2 / PE-Core backbones loaded through open_clip, with the hooks prompt tuning needs.

This is the only module that touches tower internals. Everything else sees a
:class:`Backbone`, which offers

* ``encode_image(images, prompts=None, deep=False)``: visual prompt tokens are
  inserted after the prefix tokens (none on SigLIP2, the cls token on PE-Core),
  at the input only (shallow) or replaced before every block (deep);
* ``encode_text(tokens, context=None)``: learnable context vectors overwrite the
  token embeddings at the placeholder slots made by ``tokenize_with_context``
  (after the start token on PE-Core, from position 0 on SigLIP2); the tower's
  own pooling is unchanged;
* what prompts and attention maps need to know of the towers: ``patch_size``,
  ``patch_grid``, ``patch_embeddings(images)``, ``token_embeddings(ids)``,
  ``image_tokens(...)`` and ``pool_attention(tokens)`` (the MAP head's weights).

Design choice: the attention-pool (MAP) head pools over *every* token, prompts
included, by default (``pool_prompts=True``). Both towers' MAP heads already
pool over all tokens (PE-Core's includes its cls token), and on SigLIP2, which
has no cls token, the latent query attending to the prompts is the only direct
read-out of them, the analogue of VPT's cls read-out. ``pool_prompts=False``
drops the prompt tokens before pooling for the ablation.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

import open_clip
import timm
from timm.models import register_model
from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer

from faceprompt.registry import Registry

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
MODEL_CONFIG_DIR = _PACKAGE_DIR / "model_configs"
PRETRAINED_DIR = _PACKAGE_DIR / "pretrained"
RANDOM_INIT_SEED = 0  # weights="random" always builds the same tower (see _create)


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


# --- the registry --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone: an open_clip config plus where its weights come from by default."""

    name: str
    model_name: str  # open_clip config name
    family: str  # "siglip2" or "pe-core": decides tower internals and text-context placement
    tag: str | None = None  # open_clip pretrained tag on the HF hub; None = random init by default
    local_dir: str | None = None  # embedded weights inside the package (open_clip local-dir layout)
    description: str = ""

    @property
    def default_source(self) -> str:
        if self.local_dir:
            return "embedded"
        return "hub" if self.tag else "random"


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone; a name already registered is refused (DuplicateNameError)."""
    if spec.family not in ("siglip2", "pe-core"):
        raise ValueError(f"backbone {spec.name!r}: family must be 'siglip2' or 'pe-core', not {spec.family!r}")
    return BACKBONES.add(spec.name, spec)


def list_backbones() -> list[str]:
    return BACKBONES.names()


for _spec in (
    BackboneSpec("siglip2-b16", "ViT-B-16-SigLIP2", "siglip2", "webli", description="SigLIP2 ViT-B/16, 224 px"),
    BackboneSpec("siglip2-b16-384", "ViT-B-16-SigLIP2-384", "siglip2", "webli", description="SigLIP2 ViT-B/16, 384 px"),
    BackboneSpec("siglip2-l16-256", "ViT-L-16-SigLIP2-256", "siglip2", "webli", description="SigLIP2 ViT-L/16, 256 px"),
    BackboneSpec("siglip2-l16-384", "ViT-L-16-SigLIP2-384", "siglip2", "webli", description="SigLIP2 ViT-L/16, 384 px"),
    BackboneSpec("pe-core-t16-384", "PE-Core-T-16-384", "pe-core", "meta", description="PE-Core T/16, 384 px"),
    BackboneSpec("pe-core-s16-384", "PE-Core-S-16-384", "pe-core", "meta", description="PE-Core S/16, 384 px"),
    BackboneSpec("pe-core-b16", "PE-Core-B-16", "pe-core", "meta", description="PE-Core B/16, 224 px"),
    BackboneSpec("pe-core-l14-336", "PE-Core-L-14-336", "pe-core", "meta", description="PE-Core L/14, 336 px"),
    BackboneSpec("tiny-vit", "FP-Tiny-ViT-MAP", "siglip2", description="test tower shaped like SigLIP2 (random)"),
    BackboneSpec("tiny-pe", "FP-Tiny-Eva-RoPE", "pe-core", description="test tower shaped like PE-Core (random)"),
):
    register_backbone(_spec)

def embedded_model_name(folder: Path) -> str:
    """The open_clip config in ``model_configs/`` that embedded weights in ``folder`` were written with."""
    import json

    written = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]
    for path in sorted(MODEL_CONFIG_DIR.glob("*.json")):
        if json.loads(path.read_text()) == written:
            return path.stem
    raise ValueError(f"{folder / 'open_clip_config.json'}: its model_cfg matches no config in {MODEL_CONFIG_DIR}")


if (PRETRAINED_DIR / "faceclip-tiny" / "open_clip_config.json").is_file():
    register_backbone(BackboneSpec(
        "faceclip-tiny", embedded_model_name(PRETRAINED_DIR / "faceclip-tiny"), "pe-core", local_dir="faceclip-tiny",
        description="small face model pretrained by faceprompt (demonstration only)",
    ))


def get_spec(name: str) -> BackboneSpec:
    return BACKBONES.get_or_raise(name)


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not on this machine; the message says how to provide them."""


# --- weight sources ------------------------------------------------------------------------------

_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _hub_repo(spec: BackboneSpec) -> str:
    cfg = open_clip.get_pretrained_cfg(spec.model_name, spec.tag)
    return cfg.get("hf_hub", "").strip("/")


def hub_weights_cached(spec: BackboneSpec) -> bool:
    """Whether the hub weights are already in the local HF cache (no network is touched)."""
    if not spec.tag:
        return False
    from huggingface_hub import try_to_load_from_cache

    repo = _hub_repo(spec)
    return any(isinstance(try_to_load_from_cache(repo, f), str) for f in _HUB_FILES)


def weights_available(name: str) -> str:
    """Where this backbone's default weights would come from here, or 'missing'."""
    spec = get_spec(name)
    if spec.default_source == "random":
        return "random init"
    if spec.default_source == "embedded":
        return "embedded"
    return "hf cache" if hub_weights_cached(spec) else "missing"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _missing_weights(spec: BackboneSpec, tried: str) -> WeightsNotFoundError:
    repo = _hub_repo(spec) if spec.tag else "(none)"
    return WeightsNotFoundError(
        f"no weights for backbone {spec.name!r} (open_clip {spec.model_name}): tried {tried}. "
        f"Provide them one of these ways: (1) go online once so open_clip caches hf-hub:{repo}; "
        f"(2) copy that repo's files into your HF cache and set HF_HUB_OFFLINE=1; "
        f"(3) pass weights='/path/to/open_clip_model.safetensors' (a file; the tag's preprocessing is applied); "
        f"(4) pass weights='local-dir:/path' holding open_clip_config.json and the weights; "
        f"or weights='random' for an untrained tower."
    )


class WeightsFileError(ValueError):
    """A weights file that is there but can't be used (empty, corrupt, another model's); the message says
    which file and what to do."""


def _bad_weights_file(spec: BackboneSpec, path: Path, err: BaseException | str) -> WeightsFileError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return WeightsFileError(
        f"weights file {path} can't be loaded into backbone {spec.name!r} (open_clip {spec.model_name}): "
        f"{reason[:200]}. Replace it with a complete copy of that model's weights (e.g. download "
        f"open_clip_model.safetensors again), or use the weights 'hub' or 'random' instead")


def _check_weights_file(spec: BackboneSpec, path: Path) -> None:
    """Refuse an empty or unreadable safetensors file before open_clip builds a tower around it."""
    if path.stat().st_size == 0:
        raise _bad_weights_file(spec, path, "the file is empty")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as f:
                f.keys()
        except (SafetensorError, OSError) as err:
            raise _bad_weights_file(spec, path, f"not a valid safetensors file ({err})") from None


def _file_identity(path: Path) -> str:
    stat = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    return f"file:{path.name}:{digest}"


def _dir_identity(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        if f.suffix in (".safetensors", ".bin", ".pt", ".pth"):
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))  # first MiB: cheap, changes whenever the weights do
            h.update(str(f.stat().st_size).encode())
    return f"local-dir:{path.name}:{h.hexdigest()[:12]}"


def _create(spec: BackboneSpec, weights: str | None, device: str | torch.device):
    """Build (model, preprocess, weights_identity) from a weight source."""
    source = weights or spec.default_source
    if source == "embedded":
        source = f"local-dir:{PRETRAINED_DIR / spec.local_dir}"
    if source in ("random", "meta"):
        # "meta": shapes only, no memory; enough to count parameters of any size.
        device = "meta" if source == "meta" else device
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # open_clip warns that it initialised randomly: that is intended here
        try:
            # A fixed seed makes "random" name one set of weights: prompts trained on a random test tower
            # load back onto the same tower, and caches keyed by weights_id stay valid. open_clip builds
            # on the CPU and then moves the model, so the CPU generator decides every device's weights.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                with torch.device(device) if source == "meta" else contextlib.nullcontext():
                    model, _, preprocess = open_clip.create_model_and_transforms(
                        spec.model_name, pretrained=None, device=device)
        finally:
            root.setLevel(level)
        return model, preprocess, source
    if source.startswith("local-dir:"):
        path = Path(source[len("local-dir:"):]).expanduser()
        if not (path / "open_clip_config.json").is_file():
            raise WeightsNotFoundError(
                f"backbone {spec.name!r}: {path} has no open_clip_config.json (a local-dir: folder needs "
                f"open_clip_config.json with 'model_cfg' and a weights file such as open_clip_model.safetensors)"
            )
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}", device=device)
        return model, preprocess, _dir_identity(path)
    if source == "hub":
        if not spec.tag:
            raise ValueError(f"backbone {spec.name!r} has no hub weights; use weights='random' or a file")
        if _offline() and not hub_weights_cached(spec):
            raise _missing_weights(spec, f"the HF cache for hf-hub:{_hub_repo(spec)} (HF_HUB_OFFLINE=1, not cached)")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.model_name, pretrained=spec.tag, device=device
            )
        except Exception as err:  # network and hub errors come in many types
            raise _missing_weights(spec, f"hf-hub:{_hub_repo(spec)} ({type(err).__name__}: {err})") from err
        return model, preprocess, f"hub:{spec.tag}"
    path = Path(source).expanduser()
    if not path.is_file():
        raise _missing_weights(spec, f"the file {path} (not found)")
    _check_weights_file(spec, path)
    # A file path does not bring the tag's preprocessing: pass it explicitly.
    pp = open_clip.get_pretrained_cfg(spec.model_name, spec.tag) if spec.tag else {}
    kwargs = {}
    if pp:
        kwargs = dict(image_mean=pp.get("mean"), image_std=pp.get("std"),
                      image_interpolation=pp.get("interpolation"), image_resize_mode=pp.get("resize_mode"))
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.model_name, pretrained=str(path), device=device, **kwargs
        )
    except KeyError as err:  # another model's tensors
        raise _bad_weights_file(spec, path, f"it has no tensor {err}") from err
    except (RuntimeError, ValueError, OSError) as err:  # truncated data, tensors of other shapes
        raise _bad_weights_file(spec, path, err) from err
    return model, preprocess, _file_identity(path)


# --- the frozen backbone -------------------------------------------------------------------------

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
        """Normalise prompts to [B, D, P, W] (deep) or [B, 1, P, W] (shallow)."""
        if deep:
            if prompts.dim() == 3:
                prompts = prompts.unsqueeze(0)
            if prompts.dim() != 4 or prompts.shape[1] != self.depth:
                raise ValueError(f"deep prompts must be [depth={self.depth}, P, W] or [B, depth, P, W], "
                                 f"got {tuple(prompts.shape)}")
        else:
            if prompts.dim() == 2:
                prompts = prompts.unsqueeze(0)
            if prompts.dim() != 3:
                raise ValueError(f"shallow prompts must be [P, W] or [B, P, W], got {tuple(prompts.shape)}")
            prompts = prompts.unsqueeze(1)
        if prompts.shape[-1] != self.width:
            raise ValueError(f"prompt width {prompts.shape[-1]} != vision width {self.width} of {self.name}")
        if prompts.shape[0] not in (1, batch):
            raise ValueError(f"prompts for {prompts.shape[0]} images, but the batch has {batch}")
        return prompts.expand(batch, -1, -1, -1)

    @contextlib.contextmanager
    def _rope_prefix(self, extra: int) -> Iterator[None]:
        # Eva applies RoPE to tokens after num_prefix_tokens: prompts must count as prefix, or shapes clash.
        if not self.is_eva or extra == 0:
            yield
            return
        attns = [blk.attn for blk in self._trunk.blocks]
        saved = [a.num_prefix_tokens for a in attns]
        for a, n in zip(attns, saved):
            a.num_prefix_tokens = n + extra
        try:
            yield
        finally:
            for a, n in zip(attns, saved):
                a.num_prefix_tokens = n

    def image_tokens(self, images: torch.Tensor, prompts: torch.Tensor | None = None,
                     deep: bool = False) -> torch.Tensor:
        """Final-norm token sequence [B, prefix + P + patches, W] (for pooling or attribution)."""
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
            layer_prompts, n_prompts = None, 0
        else:
            layer_prompts = self._layer_prompts(prompts.to(x.dtype), x.shape[0], deep)
            n_prompts = layer_prompts.shape[2]
            x = torch.cat([x[:, :n_pre], layer_prompts[:, 0], x[:, n_pre:]], dim=1)
        x = trunk.norm_pre(x)
        with self._rope_prefix(n_prompts):
            for i, block in enumerate(trunk.blocks):
                if deep and i > 0 and n_prompts:
                    x = torch.cat([x[:, :n_pre], layer_prompts[:, i], x[:, n_pre + n_prompts:]], dim=1)
                x = block(x, rope=rope) if self.is_eva else block(x)
        return trunk.norm(x)

    def pool_tokens(self, tokens: torch.Tensor, n_prompts: int = 0, pool_prompts: bool = True) -> torch.Tensor:
        if n_prompts and not pool_prompts:
            n_pre = self.num_prefix_tokens
            tokens = torch.cat([tokens[:, :n_pre], tokens[:, n_pre + n_prompts:]], dim=1)
        return self.model.visual.head(self._trunk.forward_head(tokens))

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
        """Image features, optionally with visual prompts ([P, W], [B, P, W]; deep: [D, P, W], [B, D, P, W]).

        Zero-shot and every prompt method take this one path (:meth:`image_tokens`, then the tower's own
        head): the same fused-attention blocks, the same token layout; without prompts it equals open_clip's
        ``model.encode_image`` up to float rounding (tests/test_backbones.py).
        """
        features = (self._compiled or self._image_features)(images, prompts, deep, pool_prompts)
        return F.normalize(features, dim=-1) if normalize else features

    def _image_features(self, images: torch.Tensor, prompts: torch.Tensor | None, deep: bool,
                        pool_prompts: bool) -> torch.Tensor:
        tokens = self.image_tokens(images, prompts, deep)
        return self.pool_tokens(tokens, 0 if prompts is None else prompts.shape[-2], pool_prompts)

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


def resolve_device(name: str | torch.device, field: str = "device") -> torch.device:
    """``name`` as a torch device ("auto": a GPU when there is one), failing at once, naming ``field``, where
    it asks for a GPU that is not there."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{field}: {str(name)!r}, but torch {torch.__version__} sees no CUDA GPU; use device: cpu")
    return device


def load_backbone(name: str, weights: str | None = None, device: str | torch.device = "cpu") -> Backbone:
    """Build a frozen :class:`Backbone`.

    ``weights``: None (the backbone's default: hub tag, embedded weights, or random for test towers),
    ``"hub"``, ``"random"``, ``"meta"`` (shapes only, for counting), a weights file, or ``"local-dir:/folder"``.
    """
    spec = get_spec(name)
    model, preprocess, identity = _create(spec, weights, device)
    return Backbone(spec, model, preprocess, identity)


def count_parameters_meta(name: str) -> dict[str, int]:
    """Parameter counts of a backbone built on the meta device: no memory, no weights needed."""
    spec = get_spec(name)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # no "initialised randomly" warning: nothing is initialised on meta
    try:
        with torch.device("meta"):
            model = open_clip.create_model(spec.model_name, pretrained=None, device="meta")
    finally:
        root.setLevel(level)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {"total": count(model), "vision": count(model.visual), "text": count(model.text)}
