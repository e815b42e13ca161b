"""The worked example of docs/conformal.md runs as written and reaches its promised coverage; the package exports
ConformalClassifier."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "conformal.md"


def test_conformal_page_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/conformal.md should hold one python example"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(blocks[0], str(PAGE), "exec"), {"__name__": "docs_conformal"})
    match = re.search(r"coverage ([0-9.]+), mean set size ([0-9.]+)", printed.getvalue())
    assert match, printed.getvalue()
    assert 0.87 <= float(match.group(1)) <= 0.95  # 1 - alpha = 0.9 within the sampling error of 1000 / 5000 examples
    assert 1.0 <= float(match.group(2)) < 10.0


def test_conformal_classifier_is_public() -> None:
    import gflowout
    from gflowout.eval.conformal import ConformalClassifier

    assert gflowout.ConformalClassifier is ConformalClassifier and "ConformalClassifier" in gflowout.__all__
