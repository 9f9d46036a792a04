"""The shape of an open_clip model (image size, patches, widths, depths), read from its config and from
its vision tower built on the meta device (no weights, no memory), for the faceclip-tiny chapter."""
from __future__ import annotations

import pandas as pd

from faceprompt.book._machinery.glue import count, glue

# The suffixes glue_shapes glues for every model: arch-<backbone>-<field>.
SHAPE_FIELDS = ("image-size", "patch-size", "vision-width", "vision-depth", "text-width", "text-depth", "context",
                "vocab", "embed-dim", "parameters", "fp16-mb", "tokens", "grid", "token-table-share")
FP16_BYTES = 2  # bytes per parameter of weights stored in half precision
BYTES_PER_MB = 1e6


def model_shape(open_clip_name: str) -> dict:
    """Image size, patch size, vision width and depth, text width, depth and context, embedding width,
    and the parameters of the whole model, counted on the meta device."""
    import open_clip
    import timm
    import torch

    import faceprompt.backbones  # noqa: F401  (registers faceprompt's model configs and towers)

    cfg = open_clip.get_model_config(open_clip_name)
    if cfg is None:
        raise ValueError(f"{open_clip_name}: no open_clip model config")
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    with torch.device("meta"):
        tower = timm.create_model(vision["timm_model_name"], pretrained=False, img_size=vision["image_size"])
        model = open_clip.create_model(open_clip_name, pretrained=None, device="meta")
    return {"image_size": vision["image_size"], "patch_size": tower.patch_embed.patch_size[0],
            "vision_width": tower.embed_dim, "vision_depth": len(tower.blocks),
            "text_width": text["width"], "text_depth": text["layers"], "context": text["context_length"],
            "vocab": text["vocab_size"], "embed_dim": cfg["embed_dim"],
            "parameters": sum(p.numel() for p in model.parameters())}


def patch_tokens(shape: dict) -> int:
    """The vision sequence: one token per patch plus the cls token."""
    return (shape["image_size"] // shape["patch_size"]) ** 2 + 1


def glue_shapes(models: dict[str, str]) -> pd.DataFrame:
    """Glue each model's shape as ``arch-<label>-<field>`` and a comparison table ``arch-table``;
    ``models`` maps a label (the key part) to an open_clip model name."""
    shapes = {label: model_shape(name) for label, name in models.items()}
    for label, shape in shapes.items():
        for field, value in shape.items():
            glue(f"arch-{label}-{field.replace('_', '-')}", count(value) if field == "parameters" else f"{value:,}")
        glue(f"arch-{label}-fp16-mb", f"{shape['parameters'] * FP16_BYTES / BYTES_PER_MB:,.0f} MB")
        glue(f"arch-{label}-tokens", str(patch_tokens(shape)))
        glue(f"arch-{label}-grid", f"{shape['image_size'] // shape['patch_size']}")
        glue(f"arch-{label}-token-table-share", f"{shape['vocab'] * shape['text_width'] / shape['parameters']:.0%}")
    table = pd.DataFrame({label: {
        "vision tower": f"{s['image_size']} px, patch {s['patch_size']}, width {s['vision_width']}, "
                        f"{s['vision_depth']} blocks",
        "text tower": f"width {s['text_width']}, {s['text_depth']} blocks, context {s['context']}",
        "embedding": str(s["embed_dim"]), "parameters": count(s["parameters"])} for label, s in shapes.items()})
    return glue("arch-table", table, display=False)
