"""Shared fixtures of the backbone tests."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread_for_every_test(one_torch_thread):
    """Every test here runs on one torch thread (the fixture is in tests/conftest.py)."""
