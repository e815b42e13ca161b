"""Config -> objects: the data module, the backbone and the method (with their options validated)."""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

from gflowout.config import DataConfig, ExperimentConfig, accepts_keyword, check_options
from gflowout.config_types import closest_match
from gflowout.errors import ConfigError
from gflowout.methods.base import DropoutMethod
from gflowout.nets.base import MaskedNet

BACKBONES: dict[str, str] = {
    "mlp": "gflowout.nets.mlp:MLP",
    "resnet18": "gflowout.nets.resnet:CifarResNet18",
}


def import_object(spec: str, what: str) -> Any:
    """Import "package.module:Name"; a ConfigError says what could not be found."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{what} {spec!r} must look like 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"{what} {spec!r}: cannot import module {module_name!r} ({error})") from None
    if not hasattr(module, attribute):
        raise ConfigError(f"{what} {spec!r}: module {module_name!r} has no attribute {attribute!r}")
    return getattr(module, attribute)


def method_type(name: str) -> type[DropoutMethod]:
    """The class of a method: a `MethodName` value, or "package.module:Class" for a user's own method."""
    if ":" in name:
        cls = import_object(name, "method")
    else:
        from gflowout.methods import method_class

        try:
            cls = method_class(name)
        except ValueError as error:
            raise ConfigError(f"config key 'method.name': {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, DropoutMethod)):
        raise ConfigError(f"method {name!r} is not a DropoutMethod subclass")
    return cls


def backbone_type(name: str) -> type[MaskedNet]:
    if ":" in name:
        return import_object(name, "backbone")
    if name not in BACKBONES:
        raise ConfigError(
            f"config key 'model.backbone': unknown backbone {name!r}; choose one of {sorted(BACKBONES)} or "
            f"'package.module:Class'{closest_match(name, sorted(BACKBONES))}"
        )
    return import_object(BACKBONES[name], "backbone")


def validate_model_options(config: ExperimentConfig) -> None:
    """Check the backbone and method options against their constructors, before anything is built."""
    check_options(backbone_type(config.model.backbone), config.model.options, "model.options")
    options = config.method_options()
    check_options(method_type(config.method.name), options, "method.options")


def build_net(config: ExperimentConfig, num_classes: int, input_shape: tuple[int, ...]) -> MaskedNet:
    """The backbone for a data set of `num_classes` classes and examples of `input_shape`."""
    cls = backbone_type(config.model.backbone)
    options = dict(config.model.options)
    check_options(cls, options, "model.options")
    options.setdefault("num_classes", num_classes)
    if accepts_keyword(cls, "input_shape"):
        options.setdefault("input_shape", tuple(input_shape))
    return cls(**options)


def build_method_for(
    config: ExperimentConfig, num_classes: int, input_shape: tuple[int, ...], dataset_size: int
) -> DropoutMethod:
    """Backbone + method; `dataset_size` (the training split's size) fills the method's option of that name."""
    cls = method_type(config.method.name)
    options = config.method_options()
    check_options(cls, options, "method.options")
    if accepts_keyword(cls, "dataset_size") and "dataset_size" not in options:
        if dataset_size < 1:
            raise ConfigError(
                f"method {config.method.name!r} needs dataset_size >= 1, the training split has {dataset_size}"
            )
        options["dataset_size"] = int(dataset_size)
    net = build_net(config, num_classes, input_shape)
    return cls(net, **options)


def build_datamodule(data: DataConfig) -> Any:
    """The LightningDataModule of `data` (ImageDataModule unless `data.module` names another class)."""
    if data.module is not None:
        cls = import_object(data.module, "data.module")
    else:
        from gflowout.data.datamodule import ImageDataModule as cls
    kwargs = dict(
        name=data.name,
        root=data.root,
        batch_size=data.batch_size,
        val_fraction=data.val_fraction,
        split_seed=data.split_seed,
        num_workers=data.num_workers,
        limit_train=data.limit_train,
    )
    if data.augment is not None:
        kwargs["augment"] = data.augment
    return cls(**kwargs)


@runtime_checkable
class ClassificationData(Protocol):
    """What the harness reads from a data module to build the backbone: `ImageDataModule` provides both, and a
    `data.module` of a user's own must too (as attributes or properties)."""

    @property
    def num_classes(self) -> int:
        """The number of classes (labels are 0 .. num_classes - 1)."""
        ...

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example, without the batch dimension (for example (1, 28, 28))."""
        ...


def dataset_shape(datamodule: object, data: DataConfig) -> tuple[int, tuple[int, ...]]:
    """(num_classes, input_shape) of a data module that satisfies `ClassificationData`.

    Raises:
        ConfigError: when the data module lacks either attribute (named by `data.module`).
    """
    if not isinstance(datamodule, ClassificationData):
        missing = [name for name in ("num_classes", "input_shape") if not hasattr(datamodule, name)]
        raise ConfigError(
            f"data module {data.module or type(datamodule).__name__!r} has no {' or '.join(missing)}: "
            "a data module must "
            "provide num_classes (an int) and input_shape (the shape of one example, e.g. (1, 28, 28))"
        )
    return int(datamodule.num_classes), tuple(int(d) for d in datamodule.input_shape)
