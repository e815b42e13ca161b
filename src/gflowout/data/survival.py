"""The Rotterdam (2982 patients) and GBSG (686) breast-cancer cohorts of R's `survival` package, read from
Debian's r-cran-survival files without R, harmonised into one `CohortTable` with a group column.

Train on one cohort, test on the other: the classic external-validation shift (Royston & Altman 2013),
the public stand-in here for the paper's leave-one-hospital-out eICU task.

Reading: the package's lazy-load database is `Rdata.rdx` (a gzip RDS index: data set -> (offset, length)
in `Rdata.rdb`) and `Rdata.rdb` (per data set: a 4-byte length, a type byte `Z`, a raw LZMA2 stream of
an R serialisation). Both files are checked against pinned sha256 digests first; the R serialisation is
parsed by the `rdata` package (pure Python: it builds data frames, it never runs code).
"""

from __future__ import annotations

import gzip
import lzma
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gflowout.data.cohort import CohortTable, check_table
from gflowout.data.integrity import file_digest
from gflowout.errors import DataError

DATASET = "rotterdam-gbsg"
DEBIAN_PACKAGE = "r-cran-survival"
DEBIAN_VERSION = "3.5-3-1"
SYSTEM_FOLDER = "/usr/lib/R/library/survival/data"
SHA256 = {
    "Rdata.rdx": "11265b8ae52a2c61c49a12ce9de24c62684cbfeae0a0e689d9a64cd43f1ce799",
    "Rdata.rdb": "2e74547bf2b9773c47411e26f7f2ad4efea118ba70579174192102f5d5b4e36d",
}
FEATURES = ("age", "meno", "size", "grade", "nodes", "log_pgr", "log_er", "hormon")
HORIZON_DAYS = 5 * 365.25
OUTCOME = (
    "1 if recurrence or death (whichever came first; Rotterdam: recur or death, time = rtime if recur else dtime; "
    "GBSG: status, time = rfstime) happened within 5 years (1826.25 days) of surgery, 0 if the patient was "
    "followed past 5 years without either; patients censored (event-free) before 5 years are excluded"
)
HARMONISATION = (
    "shared covariates: age (years), meno (0 pre / 1 post), size (0: <= 20 mm, 1: 20-50 mm, 2: > 50 mm; GBSG's "
    "millimetres binned as Rotterdam's categories), grade (1-3), nodes (positive lymph nodes), log_pgr = log(1 + pgr), "
    "log_er = log(1 + er) (fmol/l; log because both are heavily skewed), hormon (0/1 hormonal therapy). Rotterdam's "
    "chemo and year have no GBSG counterpart and are left out"
)


def _rdata() -> Any:
    try:
        import rdata
    except ImportError:
        raise DataError(
            "reading R's survival data needs the `rdata` package (pure Python): "
            "pip install 'rdata>=1.1' (or pip install 'gflowout[cohort]')"
        ) from None
    return rdata


def verified_files(folder: Path) -> dict[str, Path]:
    """The two files in `folder`, each checked against its pinned sha256 (DataError on a mismatch or absence)."""
    paths = {}
    for name, digest in SHA256.items():
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"{path} not found; run `gflowout data fetch {DATASET}` (it reads Debian's {DEBIAN_PACKAGE})"
            )
        found = file_digest(path, "sha256")
        if found != digest:
            raise DataError(
                f"{path}: sha256 {found} is not the pinned {digest} ({DEBIAN_PACKAGE} {DEBIAN_VERSION}); "
                f"delete the folder and run `gflowout data fetch {DATASET}` again"
            )
        paths[name] = path
    return paths


def read_lazyload_frame(index_path: Path, database_path: Path, name: str) -> Any:
    """One data frame (pandas) of an R lazy-load database (.rdx index + .rdb), parsed without R."""
    rdata = _rdata()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns that the index has no RDS file extension
        index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(index_path.read_bytes())))
    variables = index.get("variables", {})
    if name not in variables:
        raise DataError(f"{database_path}: no data set {name!r}; it holds {sorted(map(str, variables))[:20]} ...")
    offset, length = (int(v) for v in variables[name])
    with database_path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read(length)
    if len(chunk) != length or chunk[4:5] != b"Z":
        raise DataError(f"{database_path}: the entry of {name!r} is not an LZMA ('Z') chunk of {length} bytes")
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
    try:
        raw = lzma.decompress(chunk[5:], format=lzma.FORMAT_RAW, filters=filters)
    except lzma.LZMAError as error:
        raise DataError(f"{database_path}: cannot decompress {name!r}: {error}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rdata.conversion.convert(rdata.parser.parse_data(raw))


def _column(frame: Any, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _size_category_rotterdam(frame: Any) -> np.ndarray:
    codes = {"<=20": 0.0, "20-50": 1.0, ">50": 2.0}
    values = [str(v) for v in frame["size"].tolist()]
    unknown = sorted(set(values) - set(codes))
    if unknown:
        raise DataError(f"rotterdam: unexpected tumour size categories {unknown}")
    return np.array([codes[v] for v in values])


def _size_category_mm(size_mm: np.ndarray) -> np.ndarray:
    return np.where(size_mm <= 20, 0.0, np.where(size_mm <= 50, 1.0, 2.0))


def five_year_label(event: np.ndarray, time_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keep [rows] bool, label [rows] int64): 1 = event within 5 years, 0 = followed event-free past 5 years;
    rows censored before 5 years are not kept (their outcome is unknown)."""
    positive = (event == 1) & (time_days <= HORIZON_DAYS)
    negative = time_days > HORIZON_DAYS
    return positive | negative, positive.astype(np.int64)


def harmonised_cohorts(folder: str | Path) -> CohortTable:
    """Rotterdam and GBSG with the shared covariates `FEATURES`, a 5-year outcome (`OUTCOME`) and the group
    column ("rotterdam" / "gbsg"), from the verified Debian files in `folder`."""
    folder = Path(folder)
    paths = verified_files(folder)
    rotterdam = read_lazyload_frame(paths["Rdata.rdx"], paths["Rdata.rdb"], "rotterdam")
    gbsg = read_lazyload_frame(paths["Rdata.rdx"], paths["Rdata.rdb"], "gbsg")
    parts = []
    recur, death = _column(rotterdam, "recur"), _column(rotterdam, "death")
    rot_event = np.maximum(recur, death)
    rot_time = np.where(recur == 1, _column(rotterdam, "rtime"), _column(rotterdam, "dtime"))
    rot_size = _size_category_rotterdam(rotterdam)
    gb_size = _size_category_mm(_column(gbsg, "size"))
    for group, frame, size, event, time in (
        ("rotterdam", rotterdam, rot_size, rot_event, rot_time),
        ("gbsg", gbsg, gb_size, _column(gbsg, "status"), _column(gbsg, "rfstime")),
    ):
        columns = {
            "age": _column(frame, "age"),
            "meno": _column(frame, "meno"),
            "size": size,
            "grade": _column(frame, "grade"),
            "nodes": _column(frame, "nodes"),
            "log_pgr": np.log1p(_column(frame, "pgr")),
            "log_er": np.log1p(_column(frame, "er")),
            "hormon": _column(frame, "hormon"),
        }
        keep, label = five_year_label(event, time)
        features = np.stack([columns[name] for name in FEATURES], axis=1)[keep]
        parts.append((group, features, label[keep], int(len(frame)), int(keep.sum()), float(label[keep].mean())))
    table = CohortTable(
        features=np.concatenate([p[1] for p in parts]),
        labels=np.concatenate([p[2] for p in parts]),
        groups=np.array([p[0] for p in parts for _ in range(len(p[2]))], dtype=object),
        feature_names=FEATURES,
        provenance={
            "source": f"Debian package {DEBIAN_PACKAGE} {DEBIAN_VERSION}, {SYSTEM_FOLDER}/Rdata.{{rdx,rdb}}",
            "sha256": dict(SHA256),
            "outcome": OUTCOME,
            "harmonisation": HARMONISATION,
            "cohorts": {p[0]: {"patients": p[3], "kept": p[4], "positive_rate": round(p[5], 4)} for p in parts},
        },
    )
    return check_table(table, f"{DATASET} ({folder})")
