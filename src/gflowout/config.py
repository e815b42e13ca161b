"""Typed experiment configuration: YAML file + `--set key.path=value` overrides -> `ExperimentConfig`.

Every key is checked: an unknown key raises a `ConfigError` listing the valid keys and the closest
match, a value of the wrong type names the key and the expected type. A config file holds the
shared settings plus one block per method under `methods:`; selecting a method (`method.name`, or
`--method` on the command line) merges that block's `options` and `optim` over the shared ones.

Layout (see configs/mnist_mlp.yaml):

    seed: 1
    data:    {name: mnist, batch_size: 128, val_fraction: 0.3, ...}
    model:   {backbone: mlp, options: {hidden: [1024, 1024, 1024]}}
    method:  {name: gflowout, options: {}}
    optim:   {backbone: {lr: 0.001, schedule: {kind: multistep, milestones: [25, 40], gamma: 0.1}}}
    trainer: {max_epochs: 200, val_samples: 20, ...}
    methods: {gflowout: {options: {...}, optim: {...}}, mc_dropout: {...}}
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gflowout.config_types import build_dataclass, closest_match
from gflowout.errors import ConfigError


@dataclass
class DataConfig:
    """The data set and its splits (passed to `gflowout.data.datamodule.ImageDataModule`).

    module: optional "package.module:Class" of a user's own LightningDataModule, built with the same
    keyword arguments, with `num_classes` and `input_shape` attributes (`training.build.ClassificationData`);
    None uses ImageDataModule.
    """

    name: str = "mnist"
    root: str | None = None
    batch_size: int = 128
    val_fraction: float = 0.3
    split_seed: int = 0
    limit_train: int | None = None
    num_workers: int = 0
    augment: bool | None = None
    module: str | None = None


@dataclass
class ModelConfig:
    """The backbone: "mlp" (gflowout.MLP) or "resnet18" (gflowout.CifarResNet18); options are its keyword arguments."""

    backbone: str = "mlp"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodConfig:
    """The dropout method by name (see `gflowout.methods.MethodName`) or "package.module:Class".

    Options are its keyword arguments.
    """

    name: str = "gflowout"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScheduleConfig:
    """A learning-rate schedule, stepped once per epoch.

    kind: "none"; "multistep" (lr x gamma at each epoch in `milestones`); "cosine" (cosine decay from
    lr to `eta_min` over `t_max` epochs, default trainer.max_epochs).
    """

    kind: Literal["none", "multistep", "cosine"] = "none"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    t_max: int | None = None
    eta_min: float = 0.0


@dataclass
class GroupOptimConfig:
    """Overrides of one parameter group's optimiser (None keeps the method's published default)."""

    lr: float | None = None
    weight_decay: float | None = None
    optimizer: Literal["adam", "sgd"] | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    clip_norm: float | None = None
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def spec_overrides(self) -> dict[str, Any]:
        """The GroupSpec fields this block sets (for `DropoutMethod.make_optimizers`)."""
        names = ("lr", "weight_decay", "optimizer", "momentum", "nesterov", "clip_norm")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass
class MethodBlock:
    """Per-method settings in a config file, merged over `method.options` / `optim` when that method is selected."""

    options: dict[str, Any] = field(default_factory=dict)
    optim: dict[str, GroupOptimConfig] = field(default_factory=dict)


@dataclass
class TrainerConfig:
    """Lightning Trainer settings and the harness's own.

    max_steps: stop after this many training batches (-1: no limit; max_epochs decides).
    val_samples: S, the number of mask samples of the validation and test predictive (batched).
    checkpoint_every_n_steps: also write last.ckpt every N training batches (mid-epoch resume); 0 = only per epoch.
    limit_val_batches: Lightning's limit on validation batches per epoch (per rank), for quick runs.
    val_every_n_epochs: validate (and so consider a best checkpoint) after every k-th epoch only: epochs
        k, 2k, ...; keep max_epochs a multiple of k so the last epoch is validated. Validation draws its masks
        from a private stream, so k changes which epoch can be best, never the training itself.
    """

    max_epochs: int = 200
    max_steps: int = -1
    val_samples: int = 20
    precision: str | int = "32-true"  # Lightning's spellings; a bare 32 or 64 (YAML int) is read as "32"/"64"
    devices: int | str | list[int] = 1
    accelerator: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    log_every_n_steps: int = 50
    deterministic: bool = False
    checkpoint_every_n_steps: int = 200
    enable_progress_bar: bool = True
    limit_val_batches: int | float = 1.0
    val_every_n_epochs: int = 1


@dataclass
class DiagnosticsConfig:
    """Mask diagnostics (`gflowout.methods.diagnostics`), logged once per epoch to CSV and TensorBoard.

    enabled: compute them at the end of every training epoch, on the first `batch_size` examples of the
        training split, in eval mode and a private random stream (training is unchanged, bit for bit).
    residual_threshold: warn (once per epoch, in the log, and as masks/residual_warning = 1 in the CSV,
        drawn by the run report) when that epoch's trajectory-balance residual mean |log Z + log q - log R|
        is above this many nats. The default, 100 nats, is a factor e^100 between q(z) and R(z)/Z on a
        typical trajectory: far from any partly trained GFlowNet, so the warning means log Z or the
        policy is not keeping up with the reward (for example ID-GFlowOut's beta * N-scaled reward;
        try method.options.objective=vargrad, a larger log Z learning rate, or a smaller beta).
    """

    enabled: bool = True
    batch_size: int = 256
    residual_threshold: float = 100.0


@dataclass
class ExperimentConfig:
    """One experiment: data, backbone, method, optimisers, trainer and seed."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: dict[str, GroupOptimConfig] = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    methods: dict[str, MethodBlock] = field(default_factory=dict)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)

    # --- derived ---------------------------------------------------------------------------------
    def method_options(self) -> dict[str, Any]:
        """Keyword arguments of the selected method: its `methods:` block, then `method.options` over it."""
        block = self.methods.get(self.method.name, MethodBlock())
        return {**copy.deepcopy(block.options), **copy.deepcopy(self.method.options)}

    def group_optim(self) -> dict[str, GroupOptimConfig]:
        """Per-group optimiser overrides of the selected method: shared `optim`, then its block's `optim`."""
        block = self.methods.get(self.method.name, MethodBlock())
        merged = {name: copy.deepcopy(group) for name, group in self.optim.items()}
        for name, group in block.optim.items():
            if name not in merged:
                merged[name] = copy.deepcopy(group)
                continue
            base = merged[name]
            for f in dataclasses.fields(GroupOptimConfig):
                value = getattr(group, f.name)
                if f.name == "schedule":
                    if value != ScheduleConfig():
                        base.schedule = copy.deepcopy(value)
                elif value is not None:
                    setattr(base, f.name, value)
        return merged

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML / checkpoint safe)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --- loading ---------------------------------------------------------------------------------------


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    method: str | None = None,
    seed: int | None = None,
) -> ExperimentConfig:
    """Read a YAML config (or start from defaults), apply `key.path=value` overrides, select a method, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist; the shipped configs are in configs/")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {str(path)!r} must hold a mapping at the top, found {type(loaded).__name__}"
            )
        raw = loaded or {}
    for item in overrides:
        apply_override(raw, item)
    if method is not None:
        raw.setdefault("method", {})
        if not isinstance(raw["method"], dict):
            raise ConfigError(f"key 'method' must be a mapping (name, options), found {raw['method']!r}")
        raw["method"]["name"] = method
    if seed is not None:
        raw["seed"] = seed
    return config_from_dict(raw)


def config_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a nested dict into an `ExperimentConfig` (unknown keys and wrong types raise ConfigError)."""
    config = build_dataclass(ExperimentConfig, raw, "")
    _check_values(config)
    return config


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `a.b.c=value` override to a nested dict; the value is parsed as a YAML scalar or list."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.path=value, for example optim.backbone.lr=0.01")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {item!r} has an empty key part; write key.path=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {item!r}: value {text!r} is not valid YAML ({error})") from None
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"override {item!r}: key {where!r} holds {child!r}, not a mapping")
        node = child
    node[parts[-1]] = value


LIGHTNING_PRECISIONS = frozenset(
    {"32-true", "32", "64-true", "64", "bf16-mixed", "bf16-true", "bf16", "16-mixed", "16-true", "16"}
)


def _check_values(config: ExperimentConfig) -> None:
    """Range checks that types alone cannot express."""
    positive = {
        "data.batch_size": config.data.batch_size,
        "trainer.val_samples": config.trainer.val_samples,
        "trainer.num_nodes": config.trainer.num_nodes,
        "trainer.log_every_n_steps": config.trainer.log_every_n_steps,
        "trainer.val_every_n_epochs": config.trainer.val_every_n_epochs,
        "diagnostics.batch_size": config.diagnostics.batch_size,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key {key!r} must be >= 1, found {value}")
    if not 0.0 < config.data.val_fraction < 1.0:
        raise ConfigError(f"config key 'data.val_fraction' must be in (0, 1), found {config.data.val_fraction}")
    if not 0 <= config.seed < 2**32:
        raise ConfigError(f"config key 'seed' must be in [0, 2**32 - 1] (what the RNGs accept), found {config.seed}")
    if config.data.num_workers < 0:
        raise ConfigError(f"config key 'data.num_workers' must be >= 0, found {config.data.num_workers}")
    if not config.trainer.limit_val_batches > 0:
        raise ConfigError(
            f"config key 'trainer.limit_val_batches' must be > 0 (a count, or a fraction up to 1.0), found "
            f"{config.trainer.limit_val_batches}"
        )
    from gflowout.methods import MethodName  # light: the method modules load on first use

    known = [m.value for m in MethodName]
    for name in config.methods:
        if ":" not in name and name not in known:  # a typo'd block would be ignored silently
            raise ConfigError(f"unknown method block 'methods.{name}'; methods are {known}{closest_match(name, known)}")
    blocks = [("optim", config.optim)] + [
        (f"methods.{name}.optim", block.optim) for name, block in config.methods.items()
    ]
    for where, groups in blocks:
        for group, spec in groups.items():
            for field_name, lowest, strict in (
                ("lr", 0.0, True),
                ("weight_decay", 0.0, False),
                ("momentum", 0.0, False),
                ("clip_norm", 0.0, True),
            ):
                value = getattr(spec, field_name)
                if value is not None and (value < lowest or (strict and value == lowest) or value != value):
                    bound = ">" if strict else ">="
                    raise ConfigError(
                        f"config key '{where}.{group}.{field_name}' must be {bound} {lowest}, found {value}"
                    )
    if config.trainer.checkpoint_every_n_steps < 0:
        raise ConfigError("config key 'trainer.checkpoint_every_n_steps' must be >= 0 (0 = only at epoch ends)")
    if config.trainer.max_epochs < 1 and config.trainer.max_steps < 1:
        raise ConfigError("set trainer.max_epochs >= 1 or trainer.max_steps >= 1")
    precision = str(config.trainer.precision)
    if precision not in LIGHTNING_PRECISIONS:
        raise ConfigError(
            f"config key 'trainer.precision' is {config.trainer.precision!r}; use one of {sorted(LIGHTNING_PRECISIONS)}"
        )
    config.trainer.precision = precision
    if precision.startswith("16"):
        # Lightning's fp16 scaler unscales only inside optimizer_step: per-group clipping would see scaled
        # gradients, fused Adam refuses clipping, and the scale is updated after each of 2-3 optimisers.
        raise ConfigError(
            f"config key 'trainer.precision' is {config.trainer.precision!r}: float16 with a loss scaler is not "
            "supported with per-group optimisers and clipping; use 'bf16-mixed' (no scaler) or '32-true'"
        )


def check_options(target: Any, options: dict[str, Any], where: str) -> None:
    """Raise a ConfigError when `options` holds a keyword that `target`'s constructor does not take."""
    signature = inspect.signature(target)
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    valid = [
        name
        for name, p in parameters.items()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and name not in ("self", "net")
    ]
    for key in options:
        if key not in valid:
            name = getattr(target, "__name__", str(target))
            raise ConfigError(
                f"unknown option {where}.{key!r} for {name}; valid options: {sorted(valid)}{closest_match(key, valid)}"
            )


def accepts_keyword(target: Any, name: str) -> bool:
    """Whether `target`'s constructor takes keyword `name` (used to fill dataset_size automatically)."""
    parameters = inspect.signature(target).parameters
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
