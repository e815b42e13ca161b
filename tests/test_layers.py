"""The layers stay visible: the evaluation suite (gflowout.eval) imports neither the training harness nor the
experiment runners, which import it. Result files and the RNG helpers they share live in neutral modules
(gflowout.results, gflowout.rng)."""

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
    offenders = [f"{path.relative_to(PACKAGE)}: {name}" for path in sorted((PACKAGE / layer).rglob("*.py"))
                 for name in _imports(path)
                 if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer])]
    assert offenders == []
