"""`faceprompt params`: parameters each prompt method adds to a backbone (no weights needed).

    faceprompt params --backbone pe-core-b16 --method coop vpt --set tokens=10 deep=true
"""
from __future__ import annotations

import argparse
import dataclasses
import json

from faceprompt.backbones import load_backbone
from faceprompt.config import add_set_argument, parse_overrides
from faceprompt.prompts import added_parameters, build_model, list_methods, method_configs, resolve_method
from faceprompt.prompts.base import TEXT_PROMPTS, VISUAL_PROMPTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", required=True, nargs="+", help="one or more backbone names")
    parser.add_argument("--method", nargs="+", default=None,
                        help=f"methods (default: all of {', '.join(list_methods())}, softcpt+vpt)")
    add_set_argument(parser, "method options, each given to the methods that declare it",
                     example="tokens=10 deep=true init='a photo of a'")
    # The former spelling, kept working without being advertised.
    parser.add_argument("--option", dest="set", action="append", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")


def _method_options(method: str, options: dict) -> dict:
    """The options that this method's components declare (others belong to other methods of the table)."""
    preset = resolve_method(method)
    known = {f.name for cls in (TEXT_PROMPTS[preset.text], VISUAL_PROMPTS[preset.visual])
             for f in dataclasses.fields(cls.config_class)}
    return {k: v for k, v in options.items() if k in known}


def check_options(methods: list[str], options: dict, flag: str = "--set") -> None:
    """Refuse, naming ``flag``, an option no method declares or a value a method can't take; before any work."""
    used = set().union(*(_method_options(m, options) for m in methods)) if methods else set()
    unused = sorted(set(options) - used)
    if unused:
        raise ValueError(f"{flag}: option(s) {unused} are not options of any of the methods {methods}")
    for method in methods:
        try:
            method_configs(method, _method_options(method, options))
        except ValueError as err:
            raise ValueError(f"{flag}: {err}") from None


def method_parameter_table(backbones: list[str], methods: list[str], options: dict | None = None) -> list[dict]:
    """Added parameters per backbone and method; each option goes to the methods that declare it."""
    options = dict(options or {})
    check_options(methods, options)
    rows = []
    for name in backbones:
        backbone = load_backbone(name, weights="meta")  # shapes only: any size, no weights
        total = sum(p.numel() for p in backbone.parameters())
        for method in methods:
            model = build_model(method, backbone, config=_method_options(method, options) or None)
            added = added_parameters(model)
            rows.append({"backbone": name, "method": method, "added": added, "backbone_params": total,
                         "percent": round(100 * added / total, 4)})
    return rows


def run(args: argparse.Namespace) -> int:
    methods = args.method or [*list_methods(), "softcpt+vpt"]
    rows = method_parameter_table(args.backbone, methods, parse_overrides(args.set))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'backbone':<18}{'method':<14}{'added':>12}{'% of backbone':>15}")
    for r in rows:
        print(f"{r['backbone']:<18}{r['method']:<14}{r['added']:>12,}{r['percent']:>15.4f}")
    return 0
