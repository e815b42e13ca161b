"""A run folder that holds another run (config.yaml / results.json, no checkpoint) is never overwritten: a new
user's gflowout results were replaced by an mc_dropout run with another seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gflowout.config import load_config
from gflowout.errors import ConfigError
from gflowout.train import fit
from gflowout.training.resume import check_resume_config
from tests.helpers.train import TINY_CONFIG

QUIET = ("trainer.enable_progress_bar=false", "trainer.max_epochs=1")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread (tests/conftest.py)."""


def _held_run(folder: Path) -> dict[str, bytes]:
    config = load_config(TINY_CONFIG, [*QUIET, "method.name=gflowout", "method.options={}", "seed=1"])
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config.to_yaml())
    (folder / "results.json").write_text('{"method": "gflowout", "seed": 1}')
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("resume", [False, True])
def test_another_config_never_overwrites_a_run_without_checkpoint(tmp_path: Path, resume: bool) -> None:
    folder = tmp_path / "run"
    before = _held_run(folder)
    other = load_config(TINY_CONFIG, [*QUIET, "method.name=mc_dropout", "seed=2"])
    with pytest.raises(
        ConfigError, match="already holds a run" if not resume else "method.name: 'gflowout' -> 'mc_dropout'"
    ):
        fit(other, folder, resume=resume)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_resume_of_the_same_config_without_checkpoint_starts_afresh(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "run"
    _held_run(folder)
    same = load_config(TINY_CONFIG, [*QUIET, "method.name=gflowout", "method.options={}", "seed=1"])
    fit(same, folder, resume=True)
    assert "no checkpoint in" in capsys.readouterr().err
    assert (folder / "checkpoints" / "last.ckpt").is_file()


def test_a_refused_resume_lists_only_the_keys_that_differ_in_value() -> None:
    saved = load_config(TINY_CONFIG, list(QUIET)).to_dict()
    changed = load_config(TINY_CONFIG, [*QUIET, "optim.backbone.lr=0.0005"]).to_dict()
    with pytest.raises(ConfigError) as error:
        check_resume_config(saved, changed, "run")
    message = str(error.value)
    assert "optim.backbone.lr: None -> 0.0005" in message
    listed = message.split(" with a different config: ")[1].split(". A resumed run")[0]
    assert listed.count("->") == 1, listed  # not the new block's default schedule keys, nor `optim: {} -> None`
