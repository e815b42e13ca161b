"""evaluate_method reads MNIST-C-style shifts from the cached shifted FULL test split (shifted_split), taking
the rows of the clean limit subset, so two methods see byte-identical shifted images; on real MNIST, with
the cache under a temporary data root (the user's cache is never written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import gflowout.data.shifts as shifts
from gflowout.data.datasets import load_split, to_tensor
from gflowout.data.sources import get_spec
from gflowout.errors import DataError
from gflowout.eval.evaluate import evaluate_method, subset_indices
from tests.helpers.evaluation import RecordingMethod

SHIFT, SEVERITY, SEED, LIMIT = "brightness", 2, 3, 40


class Recorder(RecordingMethod):
    """A stand-in method: records every batch given to predict and answers uniform logits."""

    name = "recorder"

    def answer(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        return torch.zeros(samples, x.shape[0], 10)


class OtherRecorder(Recorder):
    name = "other_recorder"


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding links to the real MNIST test files; GFLOWOUT_DATA points at an empty decoy, so a
    write that ignored `root` would land there (and never in the user's cache)."""
    try:
        load_split("mnist", "test")
    except DataError as error:
        pytest.skip(f"real MNIST is needed (`make test` fetches it): {error}")
    real = get_spec("mnist").folder(None)
    root = tmp_path / "root"
    (root / "mnist").mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (root / "mnist" / name).symlink_to(real / name)
    monkeypatch.setenv("GFLOWOUT_DATA", str(tmp_path / "decoy"))
    return root


@pytest.fixture(autouse=True)
def _cache_under_the_data_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check where the cache lands by default: next to the data (no GFLOWOUT_SHIFT_CACHE)."""
    monkeypatch.delenv("GFLOWOUT_SHIFT_CACHE", raising=False)


def evaluate(method: Recorder, root: Path) -> dict:
    return evaluate_method(
        method,
        "mnist",
        root=root,
        samples=1,
        shifts={SHIFT: [SEVERITY]},
        ood_sets=(),
        rotation_angles=(),
        random_rotation=False,
        limit=LIMIT,
        seed=SEED,
        batch_size=LIMIT,
    )


def test_two_methods_read_the_same_cached_shifted_images(temp_root: Path, tmp_path: Path, monkeypatch) -> None:
    first = Recorder()
    evaluate(first, temp_root)
    (cached,) = sorted((temp_root / "shifted").rglob("*.npy"))
    assert cached.parent == temp_root / "shifted" / "mnist" and f"-{SHIFT}-s{SEVERITY}-seed{SEED}-" in cached.name
    assert not (tmp_path / "decoy").exists()
    written = cached.stat().st_mtime_ns

    # the cache holds the shift of the FULL test split; the method saw the clean subset's rows of it
    clean, _ = load_split("mnist", "test", temp_root)
    full = np.round(shifts.apply_shift(clean.astype(np.float32) / 255, SHIFT, SEVERITY, SEED) * 255).astype(np.uint8)
    np.testing.assert_array_equal(np.load(cached), full)
    rows = subset_indices(len(clean), LIMIT)
    assert len(first.batches) == 2  # clean, then the one shift, each in one batch
    torch.testing.assert_close(first.batches[0], to_tensor(clean[rows], "mnist"), rtol=0, atol=0)
    torch.testing.assert_close(first.batches[1], to_tensor(full[rows], "mnist"), rtol=0, atol=0)

    # a second method reads the file: nothing is recomputed or rewritten, the images are byte-identical
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the shifted images were recomputed instead of read from the cache")

    monkeypatch.setattr(shifts.cache, "apply_shift", must_not_run)
    second = OtherRecorder()
    evaluate(second, temp_root)
    assert cached.stat().st_mtime_ns == written and sorted((temp_root / "shifted").rglob("*.npy")) == [cached]
    assert len(second.batches) == 2
    assert second.batches[1].numpy().tobytes() == first.batches[1].numpy().tobytes()
    assert not torch.equal(second.batches[1], second.batches[0])  # the shift did change the images
