"""`faceprompt params`: parameters each prompt method adds to a backbone (no weights needed)."""
from __future__ import annotations

import argparse
import json

from faceprompt.backbones import load_backbone
from faceprompt.prompts import added_parameters, build_model, list_methods, resolve_method


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", required=True, nargs="+", help="one or more backbone names")
    parser.add_argument("--method", nargs="+", default=None,
                        help=f"methods (default: all of {', '.join(list_methods())}, softcpt+vpt)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="method option, e.g. tokens=10 or deep=true (repeatable)")
    parser.add_argument("--json", action="store_true")


def _parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--option {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        if value.lower() in ("true", "false"):
            options[key] = value.lower() == "true"
        else:
            try:
                options[key] = json.loads(value)
            except ValueError:  # not JSON: a plain string such as init=a photo of a
                options[key] = value
    return options


def _method_options(method: str, options: dict) -> dict:
    """The options that this method's components declare (others belong to other methods of the table)."""
    import dataclasses

    from faceprompt.prompts.base import TEXT_PROMPTS, VISUAL_PROMPTS

    preset = resolve_method(method)
    known = {f.name for cls in (TEXT_PROMPTS[preset.text], VISUAL_PROMPTS[preset.visual])
             for f in dataclasses.fields(cls.config_class)}
    return {k: v for k, v in options.items() if k in known}


def method_parameter_table(backbones: list[str], methods: list[str], options: dict | None = None) -> list[dict]:
    """Added parameters per backbone and method; each option goes to the methods that declare it."""
    options = dict(options or {})
    used = set().union(*(_method_options(m, options) for m in methods)) if methods else set()
    unused = sorted(set(options) - used)
    if unused:
        raise ValueError(f"option(s) {unused} are not options of any of the methods {methods}")
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
    rows = method_parameter_table(args.backbone, methods, _parse_options(args.option))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'backbone':<18}{'method':<14}{'added':>12}{'% of backbone':>15}")
    for r in rows:
        print(f"{r['backbone']:<18}{r['method']:<14}{r['added']:>12,}{r['percent']:>15.4f}")
    return 0
