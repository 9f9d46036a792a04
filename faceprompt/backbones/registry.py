"""The named backbones: :class:`BackboneSpec`, the ``BACKBONES`` registry, and the backbones registered here
(SigLIP2 and PE-Core sizes, the test towers, and faceclip-tiny when its embedded weights are in ``pretrained/``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from faceprompt.backbones.towers import _PACKAGE_DIR, MODEL_CONFIG_DIR
from faceprompt.registry import Registry

PRETRAINED_DIR = _PACKAGE_DIR / "pretrained"


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

