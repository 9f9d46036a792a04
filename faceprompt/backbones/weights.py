"""Where a backbone's weights come from: the HF hub (cache), a weights file, a local open_clip folder, the
package's embedded weights, a seeded random init, or the meta device (shapes only); and the errors that say
how to provide missing weights or replace a bad file.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

import torch

import open_clip

from faceprompt.backbones.registry import PRETRAINED_DIR, BackboneSpec, get_spec

RANDOM_INIT_SEED = 0  # weights="random" always builds the same tower (see _create)


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not on this machine; the message says how to provide them."""


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
    except Exception as err:  # not a checkpoint at all (a text file, a pickle of objects: never run)
        raise _bad_weights_file(spec, path, f"not a weights file torch can read safely ({type(err).__name__}; "
                                            f"pickled objects are never loaded)") from err
    return model, preprocess, _file_identity(path)


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
