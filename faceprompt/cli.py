"""`faceprompt <command>`: a thin layer over the package.

Each command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so
``faceprompt --help`` stays fast and one broken optional stack never blocks
the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "backbones": ("faceprompt.commands.backbones", "list the registered backbones and whether weights are here"),
    "predict": ("faceprompt.commands.predict", "classify one face image (JSON per task)"),
    "params": ("faceprompt.commands.params", "count the parameters a prompt method adds to a backbone"),
    "prepare": ("faceprompt.prepare", "turn a downloaded dataset into face crops and a manifest"),
    "train": ("faceprompt.commands.train", "train a prompt method from a config file"),
    "evaluate": ("faceprompt.commands.evaluate", "evaluate a run (or zero-shot) on prepared datasets"),
    "bench": ("faceprompt.bench", "latency, throughput and memory of methods against zero-shot"),
    "demo": ("faceprompt.demo.cli", "detect faces in images or videos and label each one"),
    "pretrain": ("faceprompt.pretrain", "contrastive image-text pretraining of a small face model"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceprompt", description="Prompt tuning VLMs for facial attributes.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            parser.print_usage(sys.stderr)
            print(f"faceprompt: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    command_parser = argparse.ArgumentParser(prog=f"faceprompt {name}", description=COMMANDS[name][1])
    module.add_arguments(command_parser)
    args = command_parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt as err:
        # Long commands raise errors.Interrupted after saving, with how to resume as the message.
        print(f"faceprompt {name}: {str(err) or 'interrupted'}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as err:
        # User-facing errors are one clear line, not a traceback.
        print(f"faceprompt {name}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
