"""Shared fixtures of the method tests (plain helpers live in tests/helpers/methods.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread_for_every_test(one_torch_thread):
    """Every test here runs on one torch thread (the fixture is in tests/conftest.py)."""
