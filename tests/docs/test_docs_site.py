"""The documentation site: its tutorials run, its CLI page covers every command, its test references exist,
and the package's docstrings point only to documents a user can open."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
TUTORIALS = DOCS / "tutorials"


def load_script(path: Path) -> ModuleType:
    """Import a file under docs/ as a module (it is not on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"docs_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_tutorial_script_is_covered_here() -> None:
    assert sorted(p.name for p in TUTORIALS.glob("*.py")) == ["own_model.py", "quickstart.py", "toy_method.py"]


def test_quickstart_runs_on_a_tiny_budget() -> None:
    result = load_script(TUTORIALS / "quickstart.py").main(steps=3)
    assert 0.0 <= result["accuracy"] <= 1.0 and result["mutual_information"] >= 0.0


def test_own_model_wraps_a_transformer_and_a_cnn_and_runs() -> None:
    tutorial = load_script(TUTORIALS / "own_model.py")
    results = tutorial.main(steps=2)
    assert set(results) == {"transformer", "cnn"}
    import gflowout

    cnn = gflowout.wrap(tutorial.SmallCNN(), input_shape=(1, 12, 12), num_classes=3)
    assert [(s.width, s.kind) for s in cnn.sites] == [(8, "channel"), (16, "channel"), (16, "unit")]


def test_toy_method_follows_the_page_and_trains() -> None:
    tutorial = load_script(TUTORIALS / "toy_method.py")
    assert tutorial.main(steps=60)["accuracy"] > 0.5  # 4 separated classes: chance is 0.25
    import gflowout

    method = tutorial.GaussianDropout(gflowout.MLP(input_shape=(6,), hidden=(8,), num_classes=3), drop_rate=0.3)
    x = torch.randn(5, 6)
    assert method.predict(x, samples=4).shape == (4, 5, 3)
    assert torch.equal(method.predict_deterministic(x)[0], method.net(x, None))  # E[z] = 1 is the plain pass
    with pytest.raises(ValueError, match="drop_rate"):
        tutorial.GaussianDropout(method.net, drop_rate=1.0)


def test_toy_method_is_accepted_by_name_in_a_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from gflowout.config import config_from_dict
    from gflowout.errors import ConfigError
    from gflowout.training.build import method_type, validate_model_options

    monkeypatch.syspath_prepend(str(TUTORIALS))
    config = config_from_dict(
        {
            "method": {"name": "toy_method:GaussianDropout", "options": {"drop_rate": 0.3}},
            "model": {"backbone": "mlp", "options": {"hidden": [8]}},
        }
    )
    assert method_type(config.method.name).__name__ == "GaussianDropout"
    validate_model_options(config)
    config.method.options = {"drop_rat": 0.3}
    with pytest.raises(ConfigError, match="drop_rat"):
        validate_model_options(config)


def test_cli_page_shows_the_help_of_every_command() -> None:
    hooks = load_script(DOCS / "hooks.py")
    page = (DOCS / "cli.md").read_text()
    markers = {tuple(m.split()) for m in hooks.HELP_MARKER.findall(page)}
    assert markers == set(hooks.subcommands(hooks._parser()))
    assert "usage: gflowout train" in hooks.help_text(("train",))


def test_tests_named_in_the_docs_exist() -> None:
    cited = set()
    for page in DOCS.rglob("*.md"):
        cited |= set(re.findall(r"(tests/[\w/]+\.py)(?:::(\w+))?", page.read_text()))
    assert len(cited) > 10
    for path, name in cited:
        assert (REPO / path).is_file(), path
        if name:
            assert re.search(rf"^def {name}\(", (REPO / path).read_text(), flags=re.M), f"{path}::{name}"


def test_docstrings_point_to_no_outside_document() -> None:
    outside = re.compile(r"method\.md|performance\.md|data\.md|design\.md|[Pp]itfall [0-9]")
    hits = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "src").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line)
    ]
    assert not hits, hits


def test_reports_page_links_committed_reports_and_says_so_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    hooks = load_script(DOCS / "hooks.py")
    monkeypatch.setattr(hooks, "REPO", tmp_path)
    page = SimpleNamespace(file=SimpleNamespace(src_uri="reports.md"))
    assert "No benchmark report is committed" in hooks.reports_markdown(page)
    (tmp_path / "results" / "mnist" / "report").mkdir(parents=True)
    (tmp_path / "results" / "mnist" / "report" / "report.html").write_text("<html></html>")
    (tmp_path / "results" / "partial" / "report").mkdir(parents=True)  # no report.html: not listed
    assert hooks.report_folders() == [tmp_path / "results" / "mnist" / "report"]
    assert "[mnist](reports/mnist/report.html)" in hooks.reports_markdown(page)
    (tmp_path / "results" / "mnist" / "report" / "report.md").write_text("# gflowout: the MNIST grid\n\ntext\n")
    assert "[gflowout: the MNIST grid](reports/mnist/report.html)" in hooks.reports_markdown(page)
