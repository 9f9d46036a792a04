"""The codebase's shape: small modules and functions, one owner of tower internals, no pickle, one-way imports."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "faceprompt"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
TOWER_INTERNALS = "faceprompt/backbones/backbone.py"  # the one module that knows every tower's internals


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def test_no_module_is_over_the_line_limit():
    long = {_rel(p): n for p in _sources("faceprompt", "data_prep")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_over_the_line_limit():
    long = {}
    for path in _sources("faceprompt", "data_prep", "benchmarks", "notebooks"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long[f"{_rel(path)}:{node.lineno} {node.name}"] = size
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_only_backbones_touches_tower_internals():
    offenders = [_rel(p) for p in _sources("faceprompt", "notebooks", "benchmarks")
                 if "_trunk" in p.read_text(encoding="utf-8") and _rel(p) != TOWER_INTERNALS]
    assert not offenders, f"reach into Backbone._trunk: {offenders}"


def test_nothing_unpickles():
    needle = "weights_only=" + "False"  # spelled apart so a grep of the repository finds no use at all
    offenders = [_rel(p) for p in _sources("faceprompt", "data_prep", "benchmarks", "notebooks")
                 if needle in p.read_text(encoding="utf-8").replace(" ", "")]
    assert not offenders, f"torch.load({needle}) in {offenders}"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_package_never_imports_data_prep():
    """Dependencies run one way: data_prep may use faceprompt, never the reverse."""
    offenders = [_rel(p) for p in _sources("faceprompt") if "data_prep" in _imports(p)]
    assert not offenders, f"faceprompt modules importing data_prep: {offenders}"


def test_one_place_resolves_the_shared_data_folder():
    """Only locations.py reads the variable that moves the shared data folder (prose may name it)."""
    owners = [_rel(p) for p in _sources("faceprompt", "data_prep", "benchmarks", "notebooks")
              if any(isinstance(node, ast.Constant) and node.value == "FACEPROMPT_SHARED_DATA"
                     for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert owners == ["faceprompt/locations.py"], owners
