"""Peak resident memory of a stretch of work (Linux: VmHWM, reset through clear_refs), and None elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gflowout import peak_memory

# In a fresh interpreter: a test process that already freed memory may reuse resident pages for the block.
CHILD = """
import json, numpy as np
from gflowout import peak_memory as m
assert m.reset_peak_rss()
before = m.peak_rss_mb()
block = np.ones(40 * 2**20 // 8)  # 40 MiB, touched
peak = m.peak_rss_mb()
del block
after_free = m.peak_rss_mb()
m.reset_peak_rss()
print(json.dumps([before, peak, after_free, m.peak_rss_mb()]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and clear_refs are Linux's")
def test_the_peak_covers_an_allocation_and_a_reset_forgets_it():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before, peak, after_free, after_reset = json.loads(done.stdout)
    assert peak >= before + 35  # the 40 MiB block
    assert after_free >= peak - 1  # the mark keeps the freed block (to the kernel's page accounting)
    assert after_reset < peak - 30  # a reset starts again from the current, smaller resident size


def test_where_the_os_has_no_such_files_both_say_so(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(peak_memory, "_STATUS", tmp_path / "missing-status")
    monkeypatch.setattr(peak_memory, "_CLEAR_REFS", tmp_path / "no-dir" / "clear_refs")
    assert peak_memory.reset_peak_rss() is False and peak_memory.peak_rss_mb() is None
