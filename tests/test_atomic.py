"""gflowout.atomic: a write that fails leaves the previous file intact and no temporary file behind, for every
kind of file the package writes (bytes, text, JSON, torch checkpoints, numpy arrays)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gflowout.atomic import (
    atomic_save_npy,
    atomic_torch_save,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)


class Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle this")


def _fail_midway(stream: Any) -> None:
    stream.write(b"half a file")
    raise OSError("disk full")


FAILING_WRITES: dict[str, Callable[[Path], Any]] = {
    "callback": lambda path: atomic_write(path, _fail_midway),
    "json": lambda path: atomic_write_json(path, {"bad": object()}),
    "torch": lambda path: atomic_torch_save({"weights": torch.ones(3), "bad": Unpicklable()}, path),
    "npy": lambda path: atomic_save_npy(path, np.array([{"an": "object"}], dtype=object)),
}


@pytest.mark.parametrize("kind", sorted(FAILING_WRITES))
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "target.bin"
    atomic_write_bytes(path, b"the previous version")
    with pytest.raises((OSError, TypeError, RuntimeError, ValueError)):
        FAILING_WRITES[kind](path)
    assert path.read_bytes() == b"the previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["target.bin"]


def test_writes_replace_the_file_and_create_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    assert atomic_write_text(folder / "t.txt", "é") == folder / "t.txt"
    assert (folder / "t.txt").read_text(encoding="utf-8") == "é"
    atomic_write_json(folder / "r.json", {"b": 1, "a": torch.tensor(2.5), "p": Path("x")})
    assert json.loads((folder / "r.json").read_text()) == {"a": 2.5, "b": 1, "p": "x"}
    atomic_save_npy(folder / "a.npy", np.arange(4, dtype=np.uint8))
    assert np.load(folder / "a.npy").tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in folder.iterdir()) == ["a.npy", "r.json", "t.txt"]


def test_the_package_has_no_other_atomic_writer() -> None:
    """Every `os.replace` of a written file goes through gflowout.atomic (data/sources.py moves a fetched file out
    of its staging folder, which is a rename of a finished download, not a write)."""
    package = Path(__file__).resolve().parents[1] / "src" / "gflowout"
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if "os.replace(" in p.read_text())
    assert users == ["atomic.py", "data/sources.py"], users


def test_json_of_an_unwritable_value_says_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="cannot write object to JSON"):
        atomic_write_json(tmp_path / "r.json", {"bad": object()})
    assert not os.listdir(tmp_path)
