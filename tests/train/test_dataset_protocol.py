"""`training.build.dataset_shape` reads one pair of attributes, `num_classes` and `input_shape` (the
`ClassificationData` protocol), from every data module instead of guessing between attribute names."""

from __future__ import annotations

import pytest
from train_standins import SyntheticDataModule

from gflowout.config import DataConfig
from gflowout.data.datamodule import ImageDataModule
from gflowout.data.datasets import DATASET_INFO
from gflowout.errors import ConfigError
from gflowout.training.build import ClassificationData, dataset_shape


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_the_image_data_module_satisfies_the_protocol(name: str) -> None:
    module = ImageDataModule(name=name)
    assert isinstance(module, ClassificationData)
    info = DATASET_INFO[name]
    assert dataset_shape(module, DataConfig(name=name)) == (info.num_classes, info.image_shape)


def test_the_synthetic_stand_in_satisfies_the_protocol() -> None:
    assert dataset_shape(SyntheticDataModule(), DataConfig(name="mnist")) == (4, (1, 6, 6))


def test_a_data_module_without_input_shape_is_refused_with_what_to_add() -> None:
    class OldStyle:
        num_classes = 10
        image_shape = (1, 28, 28)  # another name: no longer guessed

    with pytest.raises(ConfigError, match="has no input_shape.*must provide num_classes"):
        dataset_shape(OldStyle(), DataConfig(name="mnist", module="mine:OldStyle"))
