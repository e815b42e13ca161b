"""`--resume` with a config that changes the maths is refused before anything is written.

A resume used to apply some changes (seed, batch size) and silently ignore others (the optimiser's
state kept its learning rate), while config.yaml claimed all of them; a changed width crashed with a
Lightning traceback after config.yaml had been overwritten. Only the hardware and the run's length may
change (`training.resume.RESUMABLE_KEYS`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gflowout.cli.main import main
from tests.helpers.train import TINY_CONFIG, run_fit


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume-config") / "run"
    run_fit(TINY_CONFIG, out, overrides=("trainer.max_epochs=1",))
    return out


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.backbone.lr=0.5", "optim.backbone.lr"),
        ("data.batch_size=16", "data.batch_size"),
        ("model.options.hidden=[8, 8]", "model.options.hidden"),
        ("trainer.val_samples=2", "trainer.val_samples"),
    ],
)
def test_a_resume_that_changes_the_maths_is_refused_and_writes_nothing(
    finished_run: Path, override: str, key: str, capsys: pytest.CaptureFixture
) -> None:
    before = {p: p.read_bytes() for p in sorted(finished_run.rglob("*")) if p.is_file()}
    status = main(
        [
            "train",
            "--config",
            str(TINY_CONFIG),
            "--out",
            str(finished_run),
            "--resume",
            "--set",
            "trainer.max_epochs=1",
            "--set",
            override,
        ]
    )
    error = capsys.readouterr().err
    assert status == 2 and "--resume" in error and key in error and "new run folder" in error
    assert {p: p.read_bytes() for p in sorted(finished_run.rglob("*")) if p.is_file()} == before


def test_a_seed_change_is_refused_too(finished_run: Path, capsys: pytest.CaptureFixture) -> None:
    status = main(
        [
            "train",
            "--config",
            str(TINY_CONFIG),
            "--out",
            str(finished_run),
            "--resume",
            "--seed",
            "7",
            "--set",
            "trainer.max_epochs=1",
        ]
    )
    assert status == 2 and "seed: 3 -> 7" in capsys.readouterr().err


def test_the_length_of_the_run_may_change(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    run_fit(TINY_CONFIG, run, resume=True, overrides=("trainer.max_epochs=2", "trainer.checkpoint_every_n_steps=3"))
    assert json.loads((run / "results.json").read_text())["epochs"] == 2
