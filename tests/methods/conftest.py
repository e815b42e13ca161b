"""Shared fixtures of the method tests (plain helpers live in method_helpers.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors run far faster on one thread when the 2 cores are shared; the previous count comes back after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
