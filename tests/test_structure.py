"""The codebase's shape: small modules and functions, one owner of tower internals, no pickle, one-way imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("constant", ["FACEPROMPT_SHARED_DATA", "{shared}"])
def test_one_place_resolves_the_shared_data_folder(constant):
    """Only locations.py reads the variable that moves the shared data folder, and only it fills a profile's
    ``{shared}`` (the book and data_prep go through it; prose may name both)."""
    owners = [_rel(p) for p in _sources("faceprompt", "data_prep", "benchmarks", "notebooks")
              if any(isinstance(node, ast.Constant) and node.value == constant
                     for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert owners == ["faceprompt/locations.py"], owners


def test_every_dataset_adapter_lives_in_data_adapters():
    """One folder holds the adapters: each of its modules but base is a registered dataset, and back."""
    from faceprompt.data.adapters import ADAPTERS

    modules = {p.stem for p in (PACKAGE / "data" / "adapters").glob("*.py")} - {"__init__", "base"}
    assert sorted(ADAPTERS[name] for name in ADAPTERS) == sorted(f"faceprompt.data.adapters.{m}" for m in modules)


def _package_docstring_modules(init: Path) -> list[str] | None:
    """The modules a package's docstring lists in its module table, or None where it has no module table.

    A module table is an RST simple table (``====`` borders) with no header row, or with ``module`` heading its
    first column; a table of anything else (the prompt methods' table, headed ``method``) is not one."""
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    lines = doc.splitlines()
    borders = [i for i, line in enumerate(lines) if line.startswith("=") and set(line) <= {"=", " "}]
    if len(borders) < 2:
        return None
    if len(borders) >= 3 and lines[borders[0] + 1].split()[:1] != ["module"]:
        return None
    rows = lines[borders[-2] + 1:borders[-1]]
    return [row.split()[0] for row in rows if row.strip() and not row[0].isspace()]


def test_package_docstrings_list_exactly_their_modules():
    wrong = {}
    for init in sorted(PACKAGE.rglob("__init__.py")):
        listed = _package_docstring_modules(init)
        if listed is None:
            continue
        here = sorted(p.stem for p in init.parent.glob("*.py") if p.name != "__init__.py")
        here += sorted(p.parent.name for p in init.parent.glob("*/__init__.py"))
        if sorted(listed) != sorted(here) or len(set(listed)) != len(listed):
            wrong[_rel(init)] = {"listed, not here": sorted(set(listed) - set(here)),
                                 "here, not listed": sorted(set(here) - set(listed))}
    assert not wrong, f"package docstrings whose module table is not the folder's modules: {wrong}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_time_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported: the module's body (inside if / try / with /
    class bodies too), not function bodies, and not ``if TYPE_CHECKING:`` blocks."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
    return found


def _import_graph() -> dict[str, set[str]]:
    """faceprompt module -> the faceprompt modules importing it runs: the modules named, and the packages
    (``__init__``) on the way to them that are not already being imported as the importer's own parents."""
    modules = {_module_name(p): p for p in _sources("faceprompt")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets = set()
        for node in _import_time_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            base = node.module or ""
            if node.level:  # relative: from the importer's package, one level up per dot after the first
                anchor = package.split(".")[:package.count(".") + 2 - node.level]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
        edges = set()
        for target in targets:
            if not target.startswith("faceprompt"):
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                step = ".".join(parts[:i])
                if step in modules and step not in ancestors and step != name:
                    edges.add(step)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_package_modules():
    """Imports that run at import time go one way: no faceprompt module depends on itself through others
    (imports inside functions are the way to call back up, and are not counted)."""
    cycles = _cycles(_import_graph())
    assert not cycles, f"modules importing each other at import time: {cycles}"


def test_the_import_graph_sees_submodules_and_packages():
    graph = _import_graph()
    assert "faceprompt.backbones.backbone" in graph["faceprompt.backbones"]  # a package's own submodule
    assert "faceprompt.backbones" in graph["faceprompt.training.loop"]  # a package, through its __init__
    assert "faceprompt.training.losses" in graph["faceprompt.training.loop"]
    assert "faceprompt.training" not in graph["faceprompt.training.loop"]  # its own package is already loading
    assert "faceprompt.data.adapters" in graph["faceprompt.data.prepare"]  # a subpackage of a sibling
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
