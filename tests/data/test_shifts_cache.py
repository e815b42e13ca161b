"""shifted_split: builds the shifted test split once from load_split, caches it atomically, and reuses it.

Uses the data tests' `mnist_root` fixture (tests/data/conftest.py): a small MNIST-layout set with
30 test images, registered with its checksums.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gflowout.data.shifts as shifts
from gflowout.data.datasets import load_split, to_tensor
from gflowout.data.shifts import SHIFTS_VERSION, apply_shift, shifted_split
from gflowout.errors import DataError


@pytest.fixture(autouse=True)
def _cache_under_the_data_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check where the cache lands by default: next to the data (no GFLOWOUT_SHIFT_CACHE)."""
    monkeypatch.delenv("GFLOWOUT_SHIFT_CACHE", raising=False)


def _cache_files(root: Path) -> list[Path]:
    return sorted((root / "shifted").rglob("*")) if (root / "shifted").exists() else []


def test_builds_the_shifted_split_from_load_split(mnist_root: Path) -> None:
    clean, labels = load_split("mnist", "test", root=mnist_root)
    images, shifted_labels = shifted_split("mnist", "motion_blur", 2, seed=3, root=mnist_root)
    expected = np.round(apply_shift(clean.astype(np.float32) / 255, "motion_blur", 2, seed=3) * 255).astype(np.uint8)
    assert images.dtype == np.uint8 and images.shape == clean.shape
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(shifted_labels, labels)
    assert shifted_labels.dtype == np.int64
    (path,) = [p for p in _cache_files(mnist_root) if p.is_file()]
    assert path.parent == mnist_root / "shifted" / "mnist"
    for part in ("test", "motion_blur", "s2", "seed3", SHIFTS_VERSION):
        assert part in path.name
    # normalisation comes after, with the training statistics of the set
    assert tuple(to_tensor(images, "mnist").shape) == (len(images), 1, 28, 28)


def test_second_call_reads_the_cache_and_returns_identical_arrays(
    mnist_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, first_labels = shifted_split("mnist", "random_rotation", 1, seed=0, root=mnist_root)

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached split was recomputed")

    monkeypatch.setattr(shifts.cache, "apply_shift", must_not_run)
    second, second_labels = shifted_split("mnist", "random_rotation", 1, seed=0, root=mnist_root)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first_labels, second_labels)


def test_key_separates_seed_severity_and_shift(mnist_root: Path) -> None:
    a, _ = shifted_split("mnist", "impulse_noise", 2, seed=0, root=mnist_root)
    b, _ = shifted_split("mnist", "impulse_noise", 2, seed=1, root=mnist_root)
    c, _ = shifted_split("mnist", "impulse_noise", 4, seed=0, root=mnist_root)
    d, _ = shifted_split("mnist", "shot_noise", 2, seed=0, root=mnist_root)
    assert len([p for p in _cache_files(mnist_root) if p.is_file()]) == 4
    assert not np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, d)


def test_interrupted_write_leaves_no_file_and_a_rerun_succeeds(
    mnist_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = np.save

    def crash_after_partial_write(stream, array, allow_pickle=False):
        stream.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(np, "save", crash_after_partial_write)
    with pytest.raises(KeyboardInterrupt):
        shifted_split("mnist", "fog", 1, seed=0, root=mnist_root)
    assert [p for p in _cache_files(mnist_root) if p.is_file()] == []  # neither the target nor a temp file
    monkeypatch.setattr(np, "save", real_save)
    images, _ = shifted_split("mnist", "fog", 1, seed=0, root=mnist_root)
    assert images.dtype == np.uint8


def test_a_corrupt_cache_file_is_rebuilt(mnist_root: Path) -> None:
    good, _ = shifted_split("mnist", "zigzag", 3, seed=2, root=mnist_root)
    (path,) = [p for p in _cache_files(mnist_root) if p.is_file()]
    path.write_bytes(path.read_bytes()[:100])  # truncated
    again, _ = shifted_split("mnist", "zigzag", 3, seed=2, root=mnist_root)
    np.testing.assert_array_equal(again, good)
    np.save(path, np.zeros((3, 28, 28), np.uint8))  # readable, wrong shape
    np.testing.assert_array_equal(shifted_split("mnist", "zigzag", 3, seed=2, root=mnist_root)[0], good)


def test_bad_arguments_fail_before_any_data_is_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="severity must be an integer in 1..5"):
        shifted_split("mnist", "fog", 7, seed=0, root=tmp_path)
    with pytest.raises(ValueError, match="unknown shift 'smog'.*fog"):
        shifted_split("mnist", "smog", 1, seed=0, root=tmp_path)
    with pytest.raises(ValueError, match="seed must be an integer"):
        shifted_split("mnist", "fog", 1, seed="0", root=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(DataError):
        shifted_split("mnist", "fog", 1, seed=0, root=tmp_path)  # no data there
    assert not (tmp_path / "shifted").exists()


def test_shift_cache_folder_can_be_moved_by_environment(
    mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("GFLOWOUT_SHIFT_CACHE", str(elsewhere))
    shifted_split("mnist", "brightness", 1, seed=0, root=mnist_root)
    assert _cache_files(mnist_root) == []
    assert [p.parent for p in elsewhere.rglob("*.npy")] == [elsewhere / "shifted" / "mnist"]


def test_an_unwritable_cache_computes_the_shift_and_warns(
    mnist_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only shared data root made shifted_split raise PermissionError (so evaluation crashed)."""
    import gflowout.data.shifts.cache as cache

    def read_only(path, array):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache, "save_atomic", read_only)
    monkeypatch.setattr(cache, "_UNWRITABLE_WARNED", set())
    clean, _ = load_split("mnist", "test", root=mnist_root)
    with caplog.at_level("WARNING"):
        images, _ = shifted_split("mnist", "fog", 1, seed=0, root=mnist_root)
        shifted_split("mnist", "fog", 2, seed=0, root=mnist_root)  # a second set: no second warning
    expected = np.round(apply_shift(clean.astype(np.float32) / 255, "fog", 1, seed=0) * 255).astype(np.uint8)
    np.testing.assert_array_equal(images, expected)
    assert "cannot write the shift cache" in caplog.text and "GFLOWOUT_SHIFT_CACHE" in caplog.text
    assert caplog.text.count("cannot write the shift cache") == 1  # once per run, not once per set (12 in a benchmark)


def test_cache_files_are_readable_by_other_users(mnist_root: Path) -> None:
    shifted_split("mnist", "fog", 2, seed=0, root=mnist_root)
    (path,) = [p for p in _cache_files(mnist_root) if p.is_file()]
    assert path.stat().st_mode & 0o777 == 0o644
