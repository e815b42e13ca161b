"""The restricted unpickler rebuilds numpy arrays and builtins and refuses anything that could run code."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from gflowout.data.restricted_pickle import restricted_load_path, restricted_loads
from gflowout.errors import DataError


class _RunsShell:
    """Unpickling this calls os.system(command): the classic malicious pickle."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_refuses_a_pickle_that_would_run_a_shell_command(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": _RunsShell(f"touch {marker}")})
    assert b"system" in payload  # the payload really references os.system (posix.system)
    with pytest.raises(DataError, match=r"refusing to unpickle the global (os|posix)\.system"):
        restricted_loads(payload, source="evil.pkl")
    assert not marker.exists()
    # The same payload through plain pickle does run the command: the test's payload is genuine.
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.parametrize("target", [eval, exec, getattr, __import__, Path, np.load])
def test_refuses_other_callables(target) -> None:
    class Reducer:
        def __reduce__(self):
            return (target, ("1",))

    with pytest.raises(DataError, match="refusing to unpickle"):
        restricted_loads(pickle.dumps(Reducer()))


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("dtype", ["u1", "<i8", ">f4", "<f8", "bool"])
def test_numpy_arrays_and_builtins_round_trip(protocol: int, dtype: str) -> None:
    array = np.arange(12).reshape(3, 4).astype(dtype)
    value = {"a": array, "b": [1, 2.5, "x", b"y", None, True], "c": (array[0], {3, 4}), "d": np.float64(2.0)}
    payload = pickle.dumps(value, protocol=protocol)
    loaded = restricted_loads(payload, encoding="latin1")
    reference = pickle.loads(payload, encoding="latin1")  # what an unrestricted unpickler gives
    np.testing.assert_array_equal(loaded["a"], array)
    assert loaded["a"].dtype == reference["a"].dtype
    assert loaded["b"] == value["b"] and loaded["c"][1] == {3, 4} and loaded["d"] == 2.0


def test_gzip_file_and_malformed_input(tmp_path: Path) -> None:
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(pickle.dumps(np.eye(3, dtype=np.uint8))))
    np.testing.assert_array_equal(restricted_load_path(path), np.eye(3, dtype=np.uint8))
    for label, data in {"empty": b"", "garbage": b"\x80\x04not a pickle", "cut": pickle.dumps(np.eye(9))[:40]}.items():
        with pytest.raises(DataError, match="truncated or malformed"):
            restricted_loads(data, source=label)
