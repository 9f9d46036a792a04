"""`faceprompt backbones`: the registry as a table, with where weights would come from here."""
from __future__ import annotations

import argparse
import json

from faceprompt.backbones import BACKBONES, count_parameters_meta, weights_available


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def backbone_rows() -> list[dict]:
    import open_clip

    rows = []
    for name, spec in BACKBONES.items():
        counts = count_parameters_meta(name)
        cfg = open_clip.get_model_config(spec.model_name) or {}
        rows.append({
            "name": name, "family": spec.family, "open_clip": spec.model_name,
            "image_size": cfg.get("vision_cfg", {}).get("image_size"),
            "params_total_M": round(counts["total"] / 1e6, 1), "params_vision_M": round(counts["vision"] / 1e6, 1),
            "params_text_M": round(counts["text"] / 1e6, 1), "weights": weights_available(name),
            "description": spec.description,
        })
    return rows


def run(args: argparse.Namespace) -> int:
    rows = backbone_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'name':<18}{'family':<9}{'img':>5}{'total M':>9}{'vision M':>10}{'text M':>8}  weights"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['name']:<18}{r['family']:<9}{r['image_size']!s:>5}{r['params_total_M']:>9}"
              f"{r['params_vision_M']:>10}{r['params_text_M']:>8}  {r['weights']}")
    return 0
