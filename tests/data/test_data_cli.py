"""`gflowout data list` and `gflowout data fetch` through the real command-line entry point."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from gflowout.cli.main import main
from gflowout.data import sources


def _lines(capsys: pytest.CaptureFixture) -> dict[str, str]:
    out = capsys.readouterr().out
    return {
        line.split()[0]: line for line in out.splitlines() if line and not line.startswith(("data root", "name", " "))
    }


def test_list_shows_state_of_every_known_set(mnist_root: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "list", "--root", str(mnist_root)]) == 0
    lines = _lines(capsys)
    assert set(lines) == set(sources.DATASETS)
    assert "verified" in lines["mnist"] and str(mnist_root / "mnist") in lines["mnist"]
    assert all("absent" in lines[name] for name in sources.DATASETS if name != "mnist")
    (mnist_root / "mnist/t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    assert main(["data", "list", "--root", str(mnist_root)]) == 0
    out = capsys.readouterr().out
    assert "FAILED" in out and "checksum mismatch" in out and "t10k-labels-idx1-ubyte" in out


def test_fetch_from_a_file_that_fails_verification_installs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    fake = tmp_path / "train_32x32.mat"  # right name, not the published bytes
    scipy.io.savemat(fake, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 1), np.uint8)})
    root = tmp_path / "root"
    assert main(["data", "fetch", "svhn", "--root", str(root), "--from", str(fake)]) == 2
    captured = capsys.readouterr()
    assert "md5 expected e26dedcc434d2e4c54c9b2d4a06d8373" in captured.out + captured.err
    assert not (root / "svhn/train_32x32.mat").exists()
    assert main(["data", "fetch", "svhn", "cifar10", "--from", str(fake)]) == 2  # --from is for one set
    with pytest.raises(SystemExit):
        main(["data", "fetch", "imagenet"])  # argparse lists the known names


def test_fetch_of_present_set_is_a_no_op(
    mnist_root: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(staging, wanted):
        pytest.fail("a source ran although the set is present and verified")

    spec = dataclasses.replace(sources.DATASETS["mnist"], sources=(sources.Source("never", must_not_run),))
    monkeypatch.setitem(sources.DATASETS, "mnist", spec)
    assert main(["data", "fetch", "mnist", "--root", str(mnist_root)]) == 0
    assert "mnist: ok, verified" in capsys.readouterr().out
