"""Cohort tables: a user's CSV (columns named by the config, clear errors), leave-one-group-out with training-only
standardisation, and R survival's Rotterdam/GBSG cohorts read from the verified Debian files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gflowout.data.cohort import leave_one_group_out, read_cohort_csv
from gflowout.data.survival import SHA256, five_year_label, harmonised_cohorts, verified_files
from gflowout.errors import DataError


def write_csv(path: Path, rows: list[list[object]], header: str = "hospital,death,age,lactate") -> Path:
    path.write_text(header + "\n" + "\n".join(",".join(str(v) for v in row) for row in rows) + "\n")
    return path


ROWS = [
    ["h1", 0, 50, 1.0],
    ["h1", 1, 70, 3.0],
    ["h1", 0, 60, 2.0],
    ["h2", 1, 80, 4.0],
    ["h2", 0, 40, 1.5],
    ["h3", 1, 75, 5.0],
    ["h3", 0, 45, 0.5],
]


def test_csv_reads_the_named_columns_and_groups(tmp_path):
    table = read_cohort_csv(write_csv(tmp_path / "c.csv", ROWS), "hospital", "death", ["lactate", "age"])
    assert table.feature_names == ("lactate", "age")
    assert table.group_names == ["h1", "h2", "h3"]
    np.testing.assert_array_equal(table.labels, [0, 1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(table.features[1], [3.0, 70.0])
    every_other = read_cohort_csv(tmp_path / "c.csv", "hospital", "death")  # None: every other column
    assert every_other.feature_names == ("age", "lactate")


def test_leave_one_group_out_standardises_with_the_training_groups_only(tmp_path):
    table = read_cohort_csv(write_csv(tmp_path / "c.csv", ROWS), "hospital", "death", ["age", "lactate"])
    split = leave_one_group_out(table, "h3")
    assert split.train_groups == ("h1", "h2") and split.held_out == "h3"
    train = np.array([[50, 1.0], [70, 3.0], [60, 2.0], [80, 4.0], [40, 1.5]])
    mean, std = train.mean(axis=0), train.std(axis=0)
    np.testing.assert_allclose(split.x_train, (train - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(split.x_test, (np.array([[75, 5.0], [45, 0.5]]) - mean) / std, rtol=1e-6)
    np.testing.assert_array_equal(split.y_test, [1, 0])
    with pytest.raises(DataError, match="'h9' is not in the table"):
        leave_one_group_out(table, "h9")


@pytest.mark.parametrize(
    "rows, columns, message",
    [
        (ROWS, ("hospital", "death", ["age", "bmi"]), r"column\(s\) \['bmi'\] not in the header"),
        (ROWS, ("site", "death", None), r"column\(s\) \['site'\] not in the header"),
        (
            ROWS[:1] + [["h1", 1, "", 3.0]] + ROWS[2:],
            ("hospital", "death", None),
            r"missing or non-finite.*row 2 column 'age'",
        ),
        (ROWS[:1] + [["h1", 1, "NA", 3.0]] + ROWS[2:], ("hospital", "death", None), r"missing or non-finite"),
        (ROWS[:1] + [["h1", 2, 70, 3.0]] + ROWS[2:], ("hospital", "death", None), r"must be binary.*\[2\.0\]"),
        (ROWS[:1] + [["h1", "", 70, 3.0]] + ROWS[2:], ("hospital", "death", None), r"missing label"),
        (
            ROWS[:3] + [["h2", 1, 80, 4.0], ["h2", 1, 40, 1.5]] + ROWS[5:],
            ("hospital", "death", None),
            r"group 'h2' has only label 1",
        ),
        (ROWS[:1] + [["h1", 1, "tall", 3.0]] + ROWS[2:], ("hospital", "death", None), r"'tall' is not a number"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path, rows, columns, message):
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError, match=message):
        read_cohort_csv(path, *columns)


def test_a_short_row_and_an_infinite_value_are_data_errors(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("hospital,death,age\nh1,0,50\nh1,1\n")
    with pytest.raises(DataError, match="line 3 has 2 field"):
        read_cohort_csv(path, "hospital", "death")
    with pytest.raises(DataError, match="non-finite.*column 'age'"):
        read_cohort_csv(
            write_csv(tmp_path / "inf.csv", ROWS[:1] + [["h1", 1, "inf", 3.0]] + ROWS[2:]), "hospital", "death"
        )


def test_missing_csv_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_cohort_csv(tmp_path / "absent.csv", "g", "y")


def test_five_year_label_keeps_events_within_and_follow_up_past_five_years():
    event = np.array([1, 1, 0, 0, 1])
    days = np.array([400.0, 2500.0, 1000.0, 1900.0, 1826.25])
    keep, label = five_year_label(event, days)
    np.testing.assert_array_equal(keep, [True, True, False, True, True])  # censored at 1000 days: unknown
    np.testing.assert_array_equal(label[keep], [1, 0, 0, 1])  # the event after 5 years counts as 0


def test_survival_files_are_checked_against_their_pinned_digests(tmp_path):
    for name in SHA256:
        (tmp_path / name).write_bytes(b"not the Debian file")
    with pytest.raises(DataError, match="sha256 .* is not the pinned"):
        verified_files(tmp_path)
    with pytest.raises(DataError, match="gflowout data fetch rotterdam-gbsg"):
        verified_files(tmp_path / "absent")


def _survival_folder() -> Path | None:
    from gflowout.data.sources import get_spec

    folder = get_spec("rotterdam-gbsg").folder()
    return folder if all((folder / name).is_file() for name in SHA256) else None


@pytest.mark.skipif(
    _survival_folder() is None, reason="run `gflowout data fetch rotterdam-gbsg` (Debian r-cran-survival)"
)
def test_rotterdam_and_gbsg_are_harmonised():
    pytest.importorskip("rdata")
    table = harmonised_cohorts(_survival_folder())
    cohorts = table.provenance["cohorts"]
    assert cohorts["rotterdam"]["patients"] == 2982 and cohorts["gbsg"]["patients"] == 686
    assert table.group_names == ["rotterdam", "gbsg"]
    assert (table.groups == "rotterdam").sum() == cohorts["rotterdam"]["kept"] < 2982
    gbsg = table.features[table.groups == "gbsg"]
    names = list(table.feature_names)
    assert set(np.unique(gbsg[:, names.index("size")])) <= {0.0, 1.0, 2.0}
    assert gbsg[:, names.index("nodes")].min() >= 1  # GBSG: node-positive patients only
    assert set(np.unique(table.labels)) == {0, 1}


@pytest.mark.parametrize("install", [False, True])
def test_a_debian_fetch_without_install_only_downloads_and_unpacks(tmp_path, monkeypatch, install):
    import inspect
    import subprocess

    from gflowout.data import fetchers, sources

    calls = []
    system = tmp_path / "usr/lib/R/library/survival/data"  # absent: the package is not installed

    def fake_run(command, cwd=None, env=None):
        calls.append(command[:2])
        if command[:2] == ["apt-get", "download"]:
            (Path(cwd) / "r-cran-survival_3.5-3-1_amd64.deb").write_bytes(b"deb")
        if command[0] == "dpkg":
            unpacked = Path(command[3]) / str(system).lstrip("/")
            unpacked.mkdir(parents=True)
            for name in SHA256:
                (unpacked / name).write_bytes(name.encode())
        return subprocess.CompletedProcess(command, 1 if command[:2] == ["apt-get", "install"] else 0, "", "")

    monkeypatch.setattr(fetchers, "_run", fake_run)
    monkeypatch.setattr(fetchers.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(fetchers.os, "geteuid", lambda: 0, raising=False)
    fetch = fetchers.debian_files(
        "r-cran-survival", str(system), {n: n for n in SHA256}, gunzipped=False, install=install
    )
    staging = tmp_path / "staging"
    staging.mkdir()
    fetch(staging, list(SHA256))
    assert (staging / "Rdata.rdx").read_bytes() == b"Rdata.rdx"
    assert (["apt-get", "install"] in calls) is install
    spec_fetch = sources.get_spec("rotterdam-gbsg").sources[0].fetch
    assert inspect.getclosurevars(spec_fetch).nonlocals["install"] is False  # never pulls in R
