"""The layers stay visible: the evaluation suite (gflowout.eval) imports neither the training harness nor the
experiment runners, which import it. Result files and the RNG helpers they share live in neutral modules
(gflowout.results, gflowout.rng). No modules import each other (import cycles), not even through imports inside
functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "gflowout"
FORBIDDEN = {"eval": ("gflowout.training", "gflowout.experiments", "gflowout.train", "gflowout.cli")}


def _imports(path: Path) -> list[str]:
    """Every module a file imports, at the top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_does_not_import_the_layers_above_it(layer: str) -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer])
    ]
    assert offenders == []


def _module_name(path: Path) -> str:
    parts = ("gflowout",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom | ast.Import, module: str, is_package: bool) -> list[str]:
    """The gflowout modules an import statement loads (a `from package import name` loads the submodule `name`
    when there is one, else the package)."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    found = []
    for target in targets:
        while target and target not in MODULES:  # `import gflowout.a.b` of a name inside a module: the module
            target = target.rpartition(".")[0]
        if target.startswith("gflowout"):
            found.append(target)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _gflowout_imports(module: str, functions: bool) -> set[str]:
    """The gflowout modules `module` imports: the statements of its body (also inside a top-level try/if, never
    under `if TYPE_CHECKING:`) and, with functions=True, those inside its functions and classes too."""
    path = MODULES[module]
    pending: list[ast.AST] = list(ast.parse(path.read_text()).body)
    found: set[str] = set()
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update(_resolve(node, module, path.name == "__init__.py"))
        elif isinstance(node, ast.If) and _is_type_checking(node):
            pending += node.orelse
        elif isinstance(node, (ast.If, ast.Try)) or (
            functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ):
            pending += list(ast.iter_child_nodes(node))
        elif functions and isinstance(node, ast.stmt):
            pending += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
        elif isinstance(node, ast.ExceptHandler):
            pending += node.body
    return found - {module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_package_has_no_import_cycle() -> None:
    """No two gflowout modules import each other, directly or through others, when they are loaded: a cycle makes
    the result depend on which module is imported first."""
    graph = {module: _gflowout_imports(module, functions=False) for module in MODULES}
    assert _cycles(graph) == []


def test_no_function_level_import_hides_a_cycle() -> None:
    """An import moved into a function (or behind a module `__getattr__`) to dodge a cycle still ties the two
    modules to each other; counting function-level imports too, the package has no cycle either."""
    graph = {module: _gflowout_imports(module, functions=True) for module in MODULES}
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    """Control: the check itself sees a two-module and a three-module cycle."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert _cycles(graph) == [["a", "b"], ["c", "d", "e"]]


def test_every_function_level_import_names_a_module_that_exists() -> None:
    """A function-level `from gflowout... import` is only checked when the function runs; a moved module would
    break it silently until then."""
    missing = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and not node.level
                and (node.module or "").startswith("gflowout")
                and node.module not in MODULES
            ):
                missing.append(f"{module}: {node.module}")
    assert missing == []
