"""Suite-wide settings: the test suite never writes shifted-split caches into the user's data folder."""

from __future__ import annotations

import os
import tempfile

import pytest


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
