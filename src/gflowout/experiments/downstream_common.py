"""What the downstream protocols share: in-memory data, their result files, per-run state, digests.

Layout of a protocol's output folder (`--out`):

    runs/<run id>/state.json     progress of an unfinished run (written atomically after every round / subset)
    runs/<run id>/pretrained.pt  transfer only: the weights pre-trained on noisy labels
    results/<run id>.json        one result file per finished run (written atomically)
    report/                      report.md, figures/*.png, report.html (when the whole grid has finished)

A result file carries `protocol` ("active_learning" or "transfer") and `protocol_schema`; it is deliberately
not a benchmark result file (`gflowout report` of a benchmark folder never mixes them in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gflowout.errors import ConfigError, DataError
from gflowout.results import PROTOCOL_SCHEMA, load_protocol_results, read_protocol_result  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class ProtocolData:
    """A data set in memory: training and test images float [N, C, H, W], labels int64 [N]."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])


def load_protocol_data(name: str, root: str | Path | None, test_limit: int | None) -> ProtocolData:
    """The verified training and test splits of `name`, normalised; with `test_limit`, a fixed subset of the
    test split (a permutation seeded by 0, the same for every run and protocol)."""
    from gflowout.data.datasets import get_info, load_split, to_tensor

    info = get_info(name)
    if "train" not in info.splits or "test" not in info.splits:
        raise DataError(f"data set {name!r} has no train and test splits; the downstream protocols need both")
    train_images, train_labels = load_split(name, "train", root)
    test_images, test_labels = load_split(name, "test", root)
    x_test, y_test = to_tensor(test_images, name), torch.from_numpy(test_labels).to(torch.int64)
    if test_limit is not None and test_limit < y_test.shape[0]:
        keep = torch.randperm(int(y_test.shape[0]), generator=torch.Generator().manual_seed(0))[:test_limit]
        x_test, y_test = x_test[keep], y_test[keep]
    return ProtocolData(name, to_tensor(train_images, name), torch.from_numpy(train_labels).to(torch.int64),
                        x_test, y_test, info.num_classes)


def read_state(path: Path, digest: str) -> dict[str, Any] | None:
    """The saved progress of a run, None when it has none; a ConfigError when it was made with other settings."""
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}; delete it to restart that run") from error
    if state.get("settings_digest") != digest:
        raise ConfigError(f"{path} was made with other settings than this config's; use another --out, or delete "
                          f"{path.parent} to redo that run")
    return state
