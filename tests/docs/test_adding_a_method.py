"""docs/adding-a-method.md as a newcomer reads it: the code blocks the page shows (its snippet includes resolved
from the tutorial file) run as shown, the method trains and predicts, and the hooks the page lists are exactly the
abstract hooks of `DropoutMethod`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gflowout.methods.base import DropoutMethod

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "adding-a-method.md"
INCLUDE = re.compile(r'^--8<-- "([^":]+):(\w+)"$', flags=re.M)


def snippet(path: str, section: str) -> str:
    """The text between `# --8<-- [start:section]` and `# --8<-- [end:section]` of a file (the mkdocs snippet rule)."""
    text = (REPO / path).read_text()
    match = re.search(rf"# --8<-- \[start:{section}\]\n(.*?)^\s*# --8<-- \[end:{section}\]", text, flags=re.S | re.M)
    assert match, f"{path} has no snippet section {section!r}"
    lines = match.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)


def page_python_blocks() -> list[str]:
    """The page's python code blocks, with each snippet include replaced by the code it shows."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    return [INCLUDE.sub(lambda m: snippet(m.group(1), m.group(2)), block) for block in blocks]


def test_the_page_code_defines_trains_and_predicts_a_method() -> None:
    blocks = page_python_blocks()
    assert len(blocks) == 2, "the page shows the method, then its use"
    namespace: dict[str, object] = {"steps": 40}
    exec(compile(blocks[0], str(PAGE), "exec"), namespace)  # the page's own code
    method_type = namespace["GaussianDropout"]
    assert isinstance(method_type, type) and issubclass(method_type, DropoutMethod)
    exec(compile(blocks[1], str(PAGE), "exec"), namespace)
    assert namespace["logits"].shape == (8, 100, 4)  # type: ignore[attr-defined]
    assert namespace["accuracy"] > 0.5  # 4 separated classes: chance is 0.25


def test_the_hooks_the_page_lists_are_the_abstract_ones() -> None:
    section = PAGE.read_text().split("## The four things to implement")[1].split("## ")[0]
    listed = set(re.findall(r"^\d\. \*\*(.*?)\*\*", section, flags=re.M))
    names = {name for item in listed for name in re.findall(r"`(\w+)", item)}
    assert (
        names
        == set(DropoutMethod.__abstractmethods__)
        == {"param_groups", "group_defaults", "compute_losses", "prediction_sampler"}
    )


def test_a_method_that_forgets_a_hook_is_refused_at_construction() -> None:
    import gflowout

    blocks = page_python_blocks()
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(PAGE), "exec"), namespace)
    base = namespace["GaussianDropout"]

    class Forgetful(base):  # type: ignore[misc, valid-type]
        compute_losses = DropoutMethod.compute_losses  # as if never written

    with pytest.raises(TypeError, match="compute_losses"):
        Forgetful(gflowout.MLP(input_shape=(4,), hidden=(8,), num_classes=2))
