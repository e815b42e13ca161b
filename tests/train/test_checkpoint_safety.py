"""Checkpoints: round trip, refusal of another model, refusal of code-running pickles, atomic writes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from gflowout.atomic import atomic_torch_save, atomic_write_json
from gflowout.checkpoint import (
    checkpoint_metadata,
    load_method,
    read_checkpoint,
)
from gflowout.config import config_from_dict
from gflowout.errors import CheckpointError
from gflowout.training.build import build_method_for
from gflowout.training.checkpoint_io import AtomicCheckpointIO

CONFIG = {
    "seed": 5,
    "data": {"name": "mnist"},
    "model": {"backbone": "mlp", "options": {"hidden": [8, 8]}},
    "method": {"name": "concrete"},
}


def _write_method_checkpoint(path: Path, raw: dict = CONFIG) -> torch.nn.Module:
    """A checkpoint laid out as the harness writes it ("method." state keys + gflowout metadata)."""
    config = config_from_dict(raw)
    torch.manual_seed(0)
    method = build_method_for(config, num_classes=10, input_shape=(1, 28, 28), dataset_size=321)
    with torch.no_grad():
        for parameter in method.parameters():
            parameter.add_(torch.randn_like(parameter))
    checkpoint = {
        "state_dict": {f"method.{k}": v for k, v in method.state_dict().items()},
        "gflowout": checkpoint_metadata(config, 10, (1, 28, 28), 321),
    }
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)
    return method


def test_round_trip_restores_weights_config_and_predictions(tmp_path: Path) -> None:
    original = _write_method_checkpoint(tmp_path / "m.ckpt")
    method, config = load_method(
        tmp_path / "m.ckpt", expect={"method": "concrete", "backbone": "mlp", "dataset": "mnist"}
    )
    assert config == config_from_dict(CONFIG)
    assert type(method) is type(original) and method.dataset_size == 321
    for (name, a), (_, b) in zip(original.state_dict().items(), method.state_dict().items()):
        assert torch.equal(a, b), name
    assert not method.training
    x = torch.rand(3, 1, 28, 28)
    torch.manual_seed(1)
    expected = original.predict(x, samples=2)
    torch.manual_seed(1)
    assert torch.equal(method.predict(x, samples=2), expected)


@pytest.mark.parametrize(
    ("expect", "held", "asked"),
    [
        ({"method": "gflowout"}, "method='concrete'", "method='gflowout'"),
        ({"backbone": "resnet18"}, "backbone='mlp'", "backbone='resnet18'"),
        ({"dataset": "cifar10", "method": "concrete"}, "dataset='mnist'", "dataset='cifar10'"),
    ],
)
def test_checkpoint_of_another_model_is_refused_with_what_it_holds(
    tmp_path: Path, expect: dict, held: str, asked: str
) -> None:
    _write_method_checkpoint(tmp_path / "m.ckpt")
    with pytest.raises(CheckpointError) as error:
        load_method(tmp_path / "m.ckpt", expect=expect)
    assert held in str(error.value) and asked in str(error.value) and "m.ckpt" in str(error.value)


def test_expect_accepts_a_config(tmp_path: Path) -> None:
    _write_method_checkpoint(tmp_path / "m.ckpt")
    other = config_from_dict({**CONFIG, "method": {"name": "mc_dropout"}})
    with pytest.raises(CheckpointError, match="method='mc_dropout' was asked"):
        load_method(tmp_path / "m.ckpt", expect=other)


class _RunsCode:
    """Unpickling this calls os.system: exactly what weights_only loading must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_tampered_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _RunsCode(marker)}, path)
    # the file really is dangerous: plain pickle loading runs the command
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    pickle.loads(data)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        load_method(path)
    with pytest.raises(CheckpointError, match="refused"):
        AtomicCheckpointIO().load_checkpoint(path)
    assert not marker.exists()


def test_missing_corrupt_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_method(tmp_path / "nope.ckpt")
    _write_method_checkpoint(tmp_path / "m.ckpt")
    data = (tmp_path / "m.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_method(tmp_path / "cut.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="is not a checkpoint file"):
        load_method(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointError, match="no gflowout metadata"):
        load_method(tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointError, match="no checkpoints/best.ckpt"):
        load_method(tmp_path)


def test_weights_of_another_shape_are_a_checkpoint_error(tmp_path: Path) -> None:
    _write_method_checkpoint(tmp_path / "m.ckpt")
    checkpoint = torch.load(tmp_path / "m.ckpt", weights_only=True)
    checkpoint["gflowout"]["config"]["model"]["options"]["hidden"] = [8, 9]
    torch.save(checkpoint, tmp_path / "edited.ckpt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_method(tmp_path / "edited.ckpt")


_CRASH_DURING_WRITE = """
import os, sys, torch
from gflowout.atomic import atomic_torch_save, atomic_write_json

class Crash:
    def __reduce__(self):          # runs in the middle of torch.save / json.dumps: die like SIGKILL would
        os._exit(9)

kind, path = sys.argv[1], sys.argv[2]
big = torch.zeros(200_000)
if kind == "torch":
    atomic_torch_save({"weights": big, "crash": Crash()}, path)
else:
    import json
    json.dumps = lambda *a, **k: os._exit(9)
    atomic_write_json(path, {"new": 1})
"""


@pytest.mark.parametrize("kind", ["torch", "json"])
def test_a_crash_during_the_write_leaves_the_previous_file_intact(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ("last.ckpt" if kind == "torch" else "results.json")
    if kind == "torch":
        atomic_torch_save({"weights": torch.arange(5.0)}, path)
    else:
        atomic_write_json(path, {"old": 1})
    before = path.read_bytes()
    done = subprocess.run([sys.executable, "-c", _CRASH_DURING_WRITE, kind, str(path)], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert path.read_bytes() == before
    if kind == "torch":
        assert torch.equal(read_checkpoint(path)["weights"], torch.arange(5.0))


def test_plain_write_would_have_been_truncated_by_the_same_crash(tmp_path: Path) -> None:
    """Control: torch.save straight onto the target, killed the same way, destroys the old file."""
    path = tmp_path / "last.ckpt"
    torch.save({"weights": torch.arange(5.0)}, path)
    script = _CRASH_DURING_WRITE.replace("atomic_torch_save({", "torch.save({").replace("}, path)", "}, path)", 1)
    subprocess.run([sys.executable, "-c", script, "torch", str(path)], capture_output=True)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "r.json", {"a": 1})
    atomic_torch_save({"a": torch.ones(2)}, tmp_path / "c.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ckpt", "r.json"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_atomic_writes_get_the_mode_a_plain_open_would(tmp_path: Path, umask: int, mode: int) -> None:
    """mkstemp makes 0600 files whatever the umask; results and checkpoints must follow the umask (shared clusters)."""
    previous = os.umask(umask)
    try:
        written = [
            atomic_write_json(tmp_path / "r.json", {"a": 1}),
            atomic_torch_save({"a": torch.ones(2)}, tmp_path / "c.ckpt"),
        ]
    finally:
        os.umask(previous)
    for path in written:
        assert path.stat().st_mode & 0o777 == mode, f"{path.name}: {oct(path.stat().st_mode & 0o777)}"


def _edit_metadata(path: Path, **changes: object) -> None:
    """Rewrite a checkpoint's metadata config (as an attacker could: it is plain data)."""
    checkpoint = torch.load(path, weights_only=True)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        checkpoint["gflowout"]["config"][section][key] = value
    torch.save(checkpoint, path)


@pytest.mark.parametrize(
    ("section_key", "name"),
    [
        ("method__name", "gflowout_test_never_imported_a:Method"),
        ("model__backbone", "gflowout_test_never_imported_b:Net"),
    ],
)
def test_custom_code_named_by_a_checkpoint_is_not_imported_unless_allowed(
    tmp_path: Path, section_key: str, name: str
) -> None:
    """weights_only keeps pickle from running code; a "module:Class" in the metadata must not do it either
    (it was imported and built with options read from the file)."""
    path = tmp_path / "m.ckpt"
    _write_method_checkpoint(path)
    _edit_metadata(path, **{section_key: name})
    with pytest.raises(CheckpointError, match=r"names custom code \['" + name + r"'\].*allow_custom_code=True"):
        load_method(path)
    assert name.split(":")[0] not in sys.modules
    with pytest.raises(Exception, match=name.split(":")[0]):  # allowed: it is imported (and here it does not exist)
        load_method(path, allow_custom_code=True)


def test_evaluate_refuses_a_custom_data_module_named_by_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from gflowout.cli.main import main

    path = tmp_path / "m.ckpt"
    _write_method_checkpoint(path)
    _edit_metadata(path, data__module="gflowout_test_never_imported_c:Data")
    assert main(["evaluate", str(path)]) == 2
    assert "names custom code" in capsys.readouterr().err and "gflowout_test_never_imported_c" not in sys.modules


def test_the_temporary_of_a_killed_write_is_removed_by_the_next_write(tmp_path: Path) -> None:
    """A write killed mid-way leaves its `.tmp-<name>.*` file (222 MB for a checkpoint); the next write of the same
    file removes it once it is an hour old (a younger one may belong to a write still running)."""
    stale, fresh = tmp_path / ".tmp-r.json.killed", tmp_path / ".tmp-r.json.running"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(stale, (0, 0))
    atomic_write_json(tmp_path / "r.json", {"a": 1})
    assert not stale.exists() and fresh.exists()
