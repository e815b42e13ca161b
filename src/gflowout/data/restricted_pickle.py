"""A pickle reader that rebuilds numpy arrays and plain builtins, and nothing else.

Pickles can run arbitrary code when loaded (a `REDUCE` on `os.system`, for example). The CIFAR
batches and the Animal-MNIST files are pickles from third parties, so they are read through an
unpickler whose `find_class` allows only numpy's array reconstruction and a few harmless builtins.
Anything else raises `DataError` naming the file and the refused global.
"""

from __future__ import annotations

import importlib
import io
import pickle
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from gflowout.data.compressed import open_maybe_gzip
from gflowout.errors import DataError

# (module, name) pairs a data pickle may reference. numpy 2 moved numpy.core to numpy._core; pickles
# written by numpy 1 (and by Python 2) name the old module, so both spellings map to the live object.
_NUMPY_CORE_NAMES = ("_reconstruct", "scalar")
_ALLOWED: dict[tuple[str, str], tuple[str, str]] = {
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    # `_codecs.encode` turns a latin-1 str into bytes: how protocol 2 pickles bytes under Python 3.
    ("_codecs", "encode"): ("_codecs", "encode"),
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    for _name in _NUMPY_CORE_NAMES:
        _ALLOWED[(_module, _name)] = ("numpy._core.multiarray", _name)
# Protocol 5 pickles rebuild arrays from an out-of-band buffer through numeric._frombuffer.
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_module, "_frombuffer")] = ("numpy._core.numeric", "_frombuffer")
for _builtin_module in ("builtins", "__builtin__"):
    for _name in ("set", "frozenset", "bytearray", "complex", "slice", "range"):
        _ALLOWED[(_builtin_module, _name)] = ("builtins", _name)


def _resolve(module: str, name: str) -> Any:
    """The live object for an allowed global (numpy._core falls back to numpy.core on numpy 1)."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:  # numpy 1 has numpy.core, not numpy._core
        return getattr(importlib.import_module(module.replace("numpy._core", "numpy.core")), name)


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` that refuses every global outside a small allow-list (numpy arrays, builtins)."""

    def __init__(self, file: BinaryIO, source: str, encoding: str = "bytes") -> None:
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED.get((module, name))
        if target is None:
            raise DataError(
                f"{self.source}: refusing to unpickle the global {module}.{name}: data pickles may only "
                "hold numpy arrays and plain builtins (this file could run code when loaded)."
            )
        return _resolve(*target)


def restricted_load(file: BinaryIO, source: str = "<stream>", encoding: str = "bytes") -> Any:
    """Unpickle from an open binary file with the restricted unpickler.

    encoding="bytes" keeps Python 2 str objects (the CIFAR batches) as bytes, so numpy's array
    payload arrives intact; keys of such dicts are then bytes too.
    """
    try:
        return RestrictedUnpickler(file, source=source, encoding=encoding).load()
    except DataError:
        raise
    except MemoryError as error:  # a hostile file asking an allowed constructor (ndarray, bytearray) for terabytes
        raise DataError(
            f"{source}: the pickle asks for more memory than this machine has; it is not a data set file we can read"
        ) from error
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OSError,
        UnicodeDecodeError,
        zlib.error,
    ) as error:
        raise DataError(
            f"{source}: not a readable pickle ({type(error).__name__}: {error}); the file is truncated or malformed."
        ) from error


def restricted_loads(data: bytes, source: str = "<bytes>", encoding: str = "bytes") -> Any:
    """Unpickle a bytes object with the restricted unpickler."""
    return restricted_load(io.BytesIO(data), source=source, encoding=encoding)


def restricted_load_path(path: Path, encoding: str = "bytes") -> Any:
    """Unpickle a file (gzip-compressed when its first bytes say so) with the restricted unpickler."""
    with open_maybe_gzip(path) as stream:
        return restricted_load(stream, source=str(path), encoding=encoding)
