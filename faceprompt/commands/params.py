"""`faceprompt params`: parameters each prompt method adds to a backbone (no weights needed).

    faceprompt params --backbone pe-core-b16 --method coop vpt --set tokens=10 deep=true
"""
from __future__ import annotations

import argparse
import json

from faceprompt.bench.parameters import method_parameter_table
from faceprompt.config import add_set_argument, parse_overrides
from faceprompt.prompts import list_methods


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", required=True, nargs="+", help="one or more backbone names")
    parser.add_argument("--method", nargs="+", default=None,
                        help=f"methods (default: all of {', '.join(list_methods())}, softcpt+vpt)")
    add_set_argument(parser, "method options, each given to the methods that declare it",
                     example="tokens=10 deep=true init='a photo of a'")
    # The former spelling, kept working without being advertised.
    parser.add_argument("--option", dest="set", action="append", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")


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
