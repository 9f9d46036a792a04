"""`faceprompt <command>`: a thin layer over the package.

Each command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so
``faceprompt --help`` stays fast and one broken optional stack never blocks
the others.

A user's mistake (a bad option value, a missing or corrupt file) is one line on stderr naming the option or
file, never a traceback; a programming error (TypeError, AttributeError, ...) keeps its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings
from pathlib import Path
from typing import Iterator

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "backbones": ("faceprompt.commands.backbones", "list the registered backbones and whether weights are here"),
    "predict": ("faceprompt.commands.predict", "classify one face image (JSON per task)"),
    "params": ("faceprompt.commands.params", "count the parameters a prompt method adds to a backbone"),
    "prepare": ("faceprompt.commands.prepare", "turn a downloaded dataset into face crops and a manifest"),
    "train": ("faceprompt.commands.train", "train a prompt method from a config file"),
    "evaluate": ("faceprompt.commands.evaluate", "evaluate a run (or zero-shot) on prepared datasets"),
    "bench": ("faceprompt.commands.bench", "latency, throughput and memory of methods against zero-shot"),
    "demo": ("faceprompt.commands.demo", "detect faces in images or videos and label each one"),
    "pretrain": ("faceprompt.commands.pretrain", "contrastive image-text pretraining of a small face model"),
}
PACKAGE_DIR = Path(__file__).resolve().parent


class CommandParser(argparse.ArgumentParser):
    """argparse with its usage errors as one line naming the option (exit code 2, as argparse)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceprompt", description="Prompt tuning VLMs for facial attributes.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (files, values), not a bug: printed as one line."""
    import yaml
    from safetensors import SafetensorError

    # OSError covers missing, unreadable and directory-for-file paths and Pillow's unidentified images.
    return (ValueError, KeyError, RuntimeError, OSError, MemoryError, SafetensorError, yaml.YAMLError)


def one_line(err: BaseException) -> str:
    """The error's message on one line, naming the file where the exception knows it."""
    mark = getattr(err, "problem_mark", None)
    if mark is not None:  # a YAML syntax error: file, line and column instead of a quoted snippet
        return f"{mark.name}: line {mark.line + 1}, column {mark.column + 1}: {getattr(err, 'problem', err)}"
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    if isinstance(err, MemoryError):
        return "out of memory; try a smaller --batch-size (or fewer images at once)"
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


@contextlib.contextmanager
def package_warnings_as_lines(name: str) -> Iterator[None]:
    """Warnings raised by faceprompt's own code print as ``faceprompt NAME: warning: ...``; others as usual."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if Path(filename).resolve().is_relative_to(PACKAGE_DIR):
            print(f"faceprompt {name}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"faceprompt: error: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)} "
                  f"(see faceprompt --help)", file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    command_parser = CommandParser(prog=f"faceprompt {name}", description=COMMANDS[name][1])
    module.add_arguments(command_parser)
    args = command_parser.parse_args(rest)
    try:
        with package_warnings_as_lines(name):
            return int(module.run(args) or 0)
    except KeyboardInterrupt as err:
        # Long commands raise errors.Interrupted after saving, with how to resume as the message.
        print(f"faceprompt {name}: {str(err) or 'interrupted'}", file=sys.stderr)
        return 130
    except user_errors() as err:
        print(f"faceprompt {name}: error: {one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
