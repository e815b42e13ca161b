"""Peak resident memory of a stretch of work (Linux: VmHWM, reset through clear_refs), and None elsewhere."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gflowout import peak_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and clear_refs are Linux's")
def test_the_peak_covers_an_allocation_and_a_reset_forgets_it():
    assert peak_memory.reset_peak_rss()
    before = peak_memory.peak_rss_mb()
    block = np.ones(40 * 2**20 // 8)  # 40 MiB, touched
    peak = peak_memory.peak_rss_mb()
    assert before is not None and peak is not None and peak >= before + 35
    del block
    assert peak_memory.peak_rss_mb() >= peak - 1  # the mark keeps the freed block (to the kernel's page accounting)
    assert peak_memory.reset_peak_rss() and peak_memory.peak_rss_mb() < peak - 30


def test_where_the_os_has_no_such_files_both_say_so(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(peak_memory, "_STATUS", tmp_path / "missing-status")
    monkeypatch.setattr(peak_memory, "_CLEAR_REFS", tmp_path / "no-dir" / "clear_refs")
    assert peak_memory.reset_peak_rss() is False and peak_memory.peak_rss_mb() is None
