"""Fetching: sources in order, checksums before use, nothing half-written, verification on load."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from gflowout.data import fetchers, sources
from gflowout.data.datasets import load_corruption, load_split
from gflowout.data.fetchers import Source, SourceUnavailable
from gflowout.errors import DataError
from tests.helpers.data import make_cifar10_archive, with_digests, write_idx

GOOD = b"the real bytes" * 100
GOOD_SHA256 = hashlib.sha256(GOOD).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Anything a fetch left under the set's folder (final names or staging folders)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register a one-file set 'toy' (file a/b.bin with the sha256 of GOOD); sources given per test."""
    spec = sources.DatasetSpec("toy", "a toy set", (sources.FileSpec("a/b.bin", GOOD_SHA256),), ())
    monkeypatch.setitem(sources.DATASETS, "toy", spec)
    return "toy"


def writer(data: bytes, calls: list | None = None) -> Source:
    def fetch(staging: Path, wanted):
        if calls is not None:
            calls.append(data)
        (staging / wanted[0]).parent.mkdir(parents=True, exist_ok=True)
        (staging / wanted[0]).write_bytes(data)

    return Source(f"writer of {len(data)} bytes", fetch)


def failing(reason: str) -> Source:
    def fetch(staging: Path, wanted):
        raise SourceUnavailable(reason)

    return Source("failing", fetch)


def test_data_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GFLOWOUT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sources.data_root() == tmp_path / "xdg" / "gflowout"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sources.data_root() == tmp_path / "home" / ".cache" / "gflowout"
    monkeypatch.setenv("GFLOWOUT_DATA", str(tmp_path / "env"))
    assert sources.data_root() == tmp_path / "env"
    assert sources.data_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_sources_in_order_each_verified_then_no_op(toy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    chain = (failing("offline"), writer(b"tampered bytes", calls), writer(GOOD, calls))
    monkeypatch.setitem(sources.DATASETS, toy, dataclasses.replace(sources.DATASETS[toy], sources=chain))
    messages: list[str] = []
    folder = sources.fetch(toy, tmp_path, log=messages.append)
    assert (folder / "a/b.bin").read_bytes() == GOOD
    assert calls == [b"tampered bytes", GOOD]
    assert any("offline" in m for m in messages) and any(GOOD_SHA256 in m for m in messages)  # the mismatch is reported
    assert leftovers(folder) == [".verified.json", "a"]
    sources.fetch(toy, tmp_path, log=messages.append)  # present and verified: no source runs
    assert calls == [b"tampered bytes", GOOD]


def test_all_sources_failing_leaves_nothing(toy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = (failing("offline"), writer(b"wrong"))
    monkeypatch.setitem(sources.DATASETS, toy, dataclasses.replace(sources.DATASETS[toy], sources=chain))
    with pytest.raises(DataError, match=f"(?s)could not fetch 'toy'.*offline.*expected {GOOD_SHA256}") as info:
        sources.fetch(toy, tmp_path, log=lambda m: None)
    assert "failing" in str(info.value) and "writer of 5 bytes" in str(info.value)
    assert not (tmp_path / "toy").exists()


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_fetch_interrupted_half_way_leaves_no_file(
    toy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interruption
) -> None:
    def half_then_stop(staging: Path, wanted):
        target = staging / wanted[0]
        target.parent.mkdir(parents=True)
        target.write_bytes(GOOD[: len(GOOD) // 2])
        raise interruption("stopped half way")

    chain = (Source("half", half_then_stop), writer(GOOD))
    monkeypatch.setitem(sources.DATASETS, toy, dataclasses.replace(sources.DATASETS[toy], sources=chain))
    with pytest.raises(interruption):
        sources.fetch(toy, tmp_path, log=lambda m: None)
    assert not (tmp_path / "toy/a/b.bin").exists()
    assert leftovers(tmp_path / "toy") == []  # no staging folder, no temporary file


class _StallingResponse:
    """A urlopen() response that delivers one chunk and is then interrupted (Ctrl-C mid-download)."""

    def __init__(self, data: bytes) -> None:
        self.chunks = [data[: len(data) // 2]]

    def read(self, size: int = -1) -> bytes:
        if self.chunks:
            return self.chunks.pop()
        raise KeyboardInterrupt

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def test_real_download_fetcher_interrupted_mid_stream(
    toy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = gzip.compress(GOOD)
    monkeypatch.setattr(fetchers.urllib.request, "urlopen", lambda url, timeout: _StallingResponse(payload))
    chain = (
        Source("official", fetchers.url_files(("https://example.invalid/",), {"a/b.bin": "b.bin.gz"}, gunzipped=True)),
    )
    monkeypatch.setitem(sources.DATASETS, toy, dataclasses.replace(sources.DATASETS[toy], sources=chain))
    with pytest.raises(KeyboardInterrupt):
        sources.fetch(toy, tmp_path, log=lambda m: None)
    assert leftovers(tmp_path / "toy") == []
    # The same fetcher with a complete response installs the verified, decompressed file.
    monkeypatch.setattr(fetchers.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload))
    sources.fetch(toy, tmp_path, log=lambda m: None)
    assert (tmp_path / "toy/a/b.bin").read_bytes() == GOOD


def test_missing_and_corrupt_files_on_load(mnist_root: Path) -> None:
    images, _ = load_split("mnist", "train", mnist_root)
    assert images.shape == (100, 28, 28)
    path = mnist_root / "mnist/train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, one pixel changed: only the checksum can tell
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))  # a different mtime than the stamp, however coarse the file system clock
    expected = sources.DATASETS["mnist"].files[0].digest
    with pytest.raises(
        DataError, match=f"checksum mismatch: sha256 expected {expected}, found {hashlib.sha256(data).hexdigest()}"
    ) as info:
        load_split("mnist", "train", mnist_root)
    assert str(path) in str(info.value) and "gflowout data fetch mnist" in str(info.value)
    path.unlink()
    with pytest.raises(DataError, match="is missing. Fetch it with `gflowout data fetch mnist --root"):
        load_split("mnist", "train", mnist_root)
    load_split("mnist", "test", mnist_root)  # the other split's files are intact


def test_malformed_but_pinned_file_names_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx(tmp_path / "fashion-mnist/train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "fashion-mnist/train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with_digests("fashion-mnist", tmp_path, monkeypatch)
    with pytest.raises(DataError, match="expected 3 labels.*found 2.*`gflowout data fetch fashion-mnist`"):
        load_split("fashion-mnist", "train", tmp_path)


def test_from_archive_checked_against_pinned_md5s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    arrays = make_cifar10_archive(archive)
    root = tmp_path / "root"
    # The table pins the md5s of the real CIFAR-10 batches; the fixture's differ, so nothing is installed.
    with pytest.raises(DataError, match="md5 expected c99cafc152244af753f735de768cd75f"):
        sources.fetch("cifar10", root, from_path=archive, log=lambda m: None)
    assert leftovers(root / "cifar10") == []
    # With the fixture's own md5s pinned, the same archive installs and loads.
    with tarfile.open(archive) as tar:
        md5s = {m.name: hashlib.md5(tar.extractfile(m).read()).hexdigest() for m in tar if m.isfile()}
    files = tuple(dataclasses.replace(f, digest=md5s[f.path]) for f in sources.DATASETS["cifar10"].files)
    monkeypatch.setitem(sources.DATASETS, "cifar10", dataclasses.replace(sources.DATASETS["cifar10"], files=files))
    sources.fetch("cifar10", root, from_path=archive, log=lambda m: None)
    images, labels = load_split("cifar10", "test", root)
    np.testing.assert_array_equal(images, arrays["test_batch"][0])
    assert load_split("cifar10", "train", root)[0].shape == (30, 32, 32, 3)
    assert not (root / "cifar10/cifar-10-batches-py/readme.html").exists()  # only the known files are extracted


def _corruption_archive(path: Path, rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {c: rng.integers(0, 256, (5 * rows, 32, 32, 3), dtype=np.uint8) for c in sources.CORRUPTIONS}
    arrays["labels"] = np.tile(np.arange(rows) % 10, 5).astype(np.uint8)
    with tarfile.open(path, "w") as tar:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            info = tarfile.TarInfo(f"CIFAR-10-C/{name}.npy")
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
    return arrays


def test_corruption_set_vouched_by_archive_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "CIFAR-10-C.tar"
    arrays = _corruption_archive(archive, rows=2, seed=0)
    root = tmp_path / "root"
    # Not the published archive (md5 differs) and no per-file checksums: refused, nothing installed.
    with pytest.raises(DataError, match="no published checksum"):
        sources.fetch("cifar10-c", root, from_path=archive, log=lambda m: None)
    assert leftovers(root / "cifar10-c") == []
    spec = sources.DATASETS["cifar10-c"]
    archive_md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(
        sources.DATASETS, "cifar10-c", dataclasses.replace(spec, archive=(archive.name, "md5", archive_md5))
    )
    sources.fetch("cifar10-c", root, from_path=archive, log=lambda m: None)
    images, labels = load_corruption("cifar10-c", "frost", 3, root)
    np.testing.assert_array_equal(images, arrays["frost"][4:6])
    np.testing.assert_array_equal(labels, arrays["labels"][4:6])
    # The manifest written from the verified archive now guards the files.
    (root / "cifar10-c/CIFAR-10-C/frost.npy").write_bytes(np.zeros(10).tobytes())
    with pytest.raises(DataError, match="frost.npy: checksum mismatch"):
        load_corruption("cifar10-c", "frost", 3, root)
    with pytest.raises(DataError, match="unknown corruption 'rain'"):
        load_corruption("cifar10-c", "rain", 3, root)


def test_mnist_falls_back_to_the_subset_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = "\n".join(",".join(["7"] * 784 + [str(n % 10)]) for n in range(20)).encode()
    csv = gzip.compress(rows)
    subset = sources.DATASETS["mnist-5k"]
    subset = dataclasses.replace(
        subset, files=(sources.FileSpec("mnist_5k.csv.gz", hashlib.sha256(csv).hexdigest()),), sources=(writer(csv),)
    )
    monkeypatch.setitem(sources.DATASETS, "mnist-5k", subset)
    monkeypatch.setitem(
        sources.DATASETS, "mnist", dataclasses.replace(sources.DATASETS["mnist"], sources=(failing("offline"),))
    )
    messages: list[str] = []
    with pytest.warns(UserWarning, match="NOT the full data set"):
        folder = sources.fetch("mnist", tmp_path, log=messages.append)
    assert folder.name == "mnist-5k" and any("WARNING" in m and "SUBSET" in m for m in messages)
    images, labels = load_split("mnist-5k", "train", tmp_path)
    assert images.shape == (20, 28, 28) and np.all(images == 7)
    with pytest.raises(DataError, match="`gflowout data fetch mnist"):
        load_split("mnist", "train", tmp_path)


def _corrupt_gzip(path: Path) -> Path:
    """A gzip file whose deflate stream is damaged: reading it raises zlib.error (not an OSError)."""
    import gzip

    import numpy as np

    data = bytearray(gzip.compress(np.random.default_rng(0).integers(0, 4, 100000).astype(np.uint8).tobytes()))
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_a_corrupt_gzip_from_one_source_lets_the_chain_go_on(
    toy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zlib.error is not an OSError: a damaged download from the first source stopped the fetch with a traceback."""
    from gflowout.data import fetchers

    corrupt = _corrupt_gzip(tmp_path / "bad.gz")

    def damaged(staging: Path, wanted):
        target = staging / wanted[0]
        target.parent.mkdir(parents=True)
        fetchers.gunzip(corrupt, target)

    chain = (Source("damaged mirror", damaged), writer(GOOD))
    monkeypatch.setitem(sources.DATASETS, toy, dataclasses.replace(sources.DATASETS[toy], sources=chain))
    messages: list[str] = []
    sources.fetch(toy, tmp_path / "root", log=messages.append)
    assert (tmp_path / "root" / "toy/a/b.bin").read_bytes() == GOOD
    assert any("damaged mirror failed" in m and "not a valid gzip file" in m for m in messages)


def test_corrupt_gzip_and_impossible_idx_headers_are_data_errors(tmp_path: Path) -> None:
    import struct

    from gflowout.data.formats import read_idx

    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(_corrupt_gzip(tmp_path / "images.idx3-ubyte.gz"))
    huge = tmp_path / "huge.idx"
    huge.write_bytes(struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", 4_000_000_000, 4000, 4000) + b"\0" * 4)
    with pytest.raises(DataError, match="the header is corrupt"):  # not a MemoryError for 64 PB
        read_idx(huge)


def test_a_pickle_asking_for_impossible_memory_is_a_data_error() -> None:
    from gflowout.data.restricted_pickle import restricted_loads

    # GLOBAL __builtin__.bytearray (allowed), LONG1 2**45, TUPLE1, REDUCE: bytearray(2**45), 32 TiB
    hostile = b"\x80\x04c__builtin__\nbytearray\n\x8a\x06\x00\x00\x00\x00\x00 \x85R."
    with pytest.raises(DataError, match="more memory than this machine has"):
        restricted_loads(hostile, source="hostile.pkl")


def test_from_a_folder_takes_gzipped_files_too(tmp_path: Path) -> None:
    """--from FOLDER found only the raw names; a folder of the official mirrors' .gz files delivered nothing."""
    import gzip

    from gflowout.data.fetchers import local_files

    folder = tmp_path / "downloads" / "a"
    folder.mkdir(parents=True)
    (folder / "b.bin.gz").write_bytes(gzip.compress(GOOD))
    staging = tmp_path / "staging"
    staging.mkdir()
    local_files(tmp_path / "downloads", None)(staging, ["a/b.bin"])
    assert (staging / "a" / "b.bin").read_bytes() == GOOD


def test_a_killed_fetchs_staging_folder_is_removed_by_the_next_fetch(
    toy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setitem(sources.DATASETS, toy, dataclasses.replace(sources.DATASETS[toy], sources=(writer(GOOD),)))
    stale, fresh = tmp_path / "toy" / ".fetch-killed", tmp_path / "toy" / ".fetch-running"
    for folder in (stale, fresh):
        (folder / "a").mkdir(parents=True)
        (folder / "a" / "b.bin").write_bytes(GOOD[:5])
    os.utime(stale, (0, 0))  # untouched for decades: a SIGKILLed fetch's leftover (53 MB for MNIST)
    sources.fetch(toy, tmp_path, log=lambda m: None)
    assert not stale.exists() and fresh.exists()  # a recent one may belong to a fetch still running


def test_an_unreadable_file_is_a_data_error_and_data_list_reports_it(
    toy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the user cannot read gave a raw PermissionError (and `gflowout data list` crashed for every set).
    As root here, permissions cannot be taken away: the digest read is made to fail as it would."""

    monkeypatch.setitem(sources.DATASETS, toy, dataclasses.replace(sources.DATASETS[toy], sources=(writer(GOOD),)))
    sources.fetch(toy, tmp_path, log=lambda m: None)

    def denied(folder, relative, algorithm):
        raise PermissionError(13, "Permission denied", str(folder / relative))

    monkeypatch.setattr(sources, "current_digest", denied)
    with pytest.raises(DataError, match="cannot be read \\(Permission denied\\); check its permissions"):
        sources.verify_files(toy, tmp_path)
    status = sources.dataset_status(toy, tmp_path)
    assert not status.verified and "check its permissions" in status.problem
