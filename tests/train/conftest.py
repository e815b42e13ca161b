"""Fixtures of the harness tests; the helpers themselves live in tests/helpers/train.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.train import TINY_CONFIG


@pytest.fixture
def tiny_config() -> Path:
    return TINY_CONFIG
