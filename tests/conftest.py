"""Suite-wide settings and fixtures: no shifted-split cache in the user's data folder; a one-thread fixture."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _shift_cache_in_a_temporary_folder():
    with tempfile.TemporaryDirectory(prefix="gflowout-shift-cache-") as folder:
        previous = os.environ.get("GFLOWOUT_SHIFT_CACHE")
        os.environ["GFLOWOUT_SHIFT_CACHE"] = folder  # inherited by the CLI subprocesses of the tests
        yield
        if previous is None:
            os.environ.pop("GFLOWOUT_SHIFT_CACHE", None)
        else:
            os.environ["GFLOWOUT_SHIFT_CACHE"] = previous


@pytest.fixture
def one_torch_thread():
    """Tiny tensors run far faster on one thread when the 2 cores are shared; the previous count comes back after.

    Folders of tiny-tensor tests make it autouse in their own conftest.py."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
