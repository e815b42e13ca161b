"""`DropoutMethod`: what every method (GFlowOut, ID-GFlowOut, MC, Concrete, Contextual, none, ensemble) provides.

A method owns a `MaskedNet` and supplies (a) the sampler that fills its mask sites, (b) one loss per
parameter group, (c) label-free prediction. Training code (the Lightning harness, a user's own loop,
`train_step` below) only ever sees this interface.

The base class splits each public entry point from the hook a method implements, so that the checks
every method needs are written once:

* `training_losses(x, y)` validates the batch, then calls the method's `compute_losses(x, y)`;
* `predict(x, samples)` checks the sample count, validates x and switches to eval mode without
  gradients, then calls `sample_logits(x, samples)` (by default one batched pass of the
  `prediction_sampler()` over x repeated S times);
* `make_optimizers(overrides)` builds one optimiser per group from `resolve_specs(overrides)` and
  returns them with those specs (`Optimizers`), so that `train_step` clips with the same specs.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from gflowout.errors import NonFiniteLossError
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSampler
from gflowout.optim_spec import GroupSpec

__all__ = [
    "DropoutMethod",
    "GroupSpec",
    "Optimizers",
    "StepResult",
    "build_optimizer",
    "clip_group_gradients",
    "eval_mode",
    "raise_if_nonfinite",
    "repeated_pass",
    "resolve_group_specs",
    "site_rates",
]

DEFAULT_PREDICT_SAMPLES = 20  # S of `predict` when none is given (a method with a fixed count gives its own)


@dataclass
class StepResult:
    """What one training step computed.

    losses: one scalar per parameter group name. They are back-propagated as one sum, so a loss may
        reach several groups where the method's objective says so (Concrete: the cross-entropy trains
        the drop rates too); GFlowOut's are separated by detaches, and its tests check that.
    logs: detached scalars for progress bars and logs (accuracy, log Z, TB loss, ...).
    """

    losses: dict[str, Tensor]
    logs: dict[str, Tensor] = field(default_factory=dict)


class Optimizers(dict[str, torch.optim.Optimizer]):
    """One optimiser per parameter group name, with the `GroupSpec`s they were built from.

    A plain dict for every caller; `train_step` reads `specs` to clip each group's gradients as its
    spec says, so that the clipping always matches the optimisers it is given.
    """

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer], specs: Mapping[str, GroupSpec]) -> None:
        super().__init__(optimizers)
        self.specs: dict[str, GroupSpec] = dict(specs)


class DropoutMethod(nn.Module, metaclass=ABCMeta):
    """Base class of every dropout method; see the module docstring.

    A subclass implements the four abstract hooks (`param_groups`, `group_defaults`, `compute_losses`,
    `prediction_sampler`) and may override the optional ones (`deterministic_sampler`, `sample_logits`,
    `prediction_samples`, `set_epoch`, `mask_diagnostics`). It is not meant to override the public entry
    points (`training_losses`, `predict`, `predict_deterministic`, `train_step`): they hold the input
    checks every method needs.

    Args:
        net: the backbone whose mask sites the method fills (`gflowout.MLP`, `gflowout.CifarResNet18` or
            `gflowout.wrap(module)`).

    Raises:
        TypeError: when `net` is not a `MaskedNet`.
    """

    name: ClassVar[str] = "base"

    def __init__(self, net: MaskedNet) -> None:
        super().__init__()
        if not isinstance(net, MaskedNet):
            raise TypeError(
                f"{type(self).__name__} needs a gflowout MaskedNet (MLP, CifarResNet18 or gflowout.wrap(module)), "
                f"got {type(net).__name__}"
            )
        self.net = net

    # --- hooks a method implements --------------------------------------------------------------
    @abstractmethod
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Disjoint parameter groups, each trained by its own loss and optimiser."""

    @abstractmethod
    def group_defaults(self) -> dict[str, GroupSpec]:
        """Optimiser defaults per group name (same keys as `param_groups`)."""

    @abstractmethod
    def compute_losses(self, x: Tensor, y: Tensor) -> StepResult:
        """Sample masks for a labelled batch and return one loss per parameter group.

        Called by `training_losses` with a batch it has already validated.
        """

    @abstractmethod
    def prediction_sampler(self) -> MaskSampler | None:
        """The sampler used at test time. It never sees a label."""

    # --- optional hooks -------------------------------------------------------------------------
    def deterministic_sampler(self) -> MaskSampler | None:
        """A deterministic sampler (for example weight scaling), or None when the method has none."""
        return None

    def sample_logits(self, x: Tensor, samples: int) -> Tensor:
        """Per-sample logits [samples, batch, classes] for a validated x, in eval mode without gradients.

        Default: one batched pass of `prediction_sampler()` over x repeated `samples` times (`repeated_pass`).
        A method overrides it where its samples are computed otherwise (one pass for all when they are
        equal, one member each for an ensemble, a sampler told about the repeated batch).
        """
        return repeated_pass(self.net, x, samples, self.prediction_sampler())

    def prediction_samples(self, requested: int) -> int:
        """The number of samples `predict` will give when S = `requested` is asked for: S itself, except for a
        method whose sample count is fixed (a deep ensemble: its M members). Evaluation code calls it first."""
        return requested

    def set_epoch(self, epoch: int) -> None:
        """Advance epoch-based schedules (for example GFlowOut's beta). Keep schedule state in buffers."""

    def mask_diagnostics(self, x: Tensor, y: Tensor) -> dict[str, float]:
        """Per-site statistics of the learned mask distribution on a labelled batch (`methods.diagnostics`);
        empty for methods whose masks are not learned. Called without gradients, in eval mode."""
        return {}

    # --- public entry points --------------------------------------------------------------------
    def validate(self, x: Tensor, y: Tensor | None = None) -> None:
        """Raise a ValueError on a malformed batch (shape, dtype, non-finite values, labels out of range)."""
        self.net.validate_input(x)
        if y is not None:
            self.net.validate_labels(y, x.shape[0])

    def training_losses(self, x: Tensor, y: Tensor) -> StepResult:
        """One loss per parameter group for a labelled batch: `validate(x, y)`, then `compute_losses(x, y)`.

        Args:
            x: inputs [batch, *net.input_shape], floating point.
            y: integer class labels [batch], in [0, net.num_classes).

        Returns:
            The `StepResult`: losses by group name (to be back-propagated as one sum) and detached logs.

        Raises:
            ValueError: on a malformed batch.
        """
        self.validate(x, y)
        return self.compute_losses(x, y)

    @torch.no_grad()
    def predict(self, x: Tensor, samples: int | None = None) -> Tensor:
        """Per-sample logits from the label-free prediction sampler, in eval mode, without gradients.

        Args:
            x: inputs [batch, *net.input_shape].
            samples: S, the number of mask samples; None for `prediction_samples(20)` (20, or a method's
                fixed count). `samples=1` is the single-pass mode of the official protocol.

        Returns:
            Logits [S, batch, classes].

        Raises:
            ValueError: when S is not a positive integer, when the method's sample count is fixed and S is
                another (`prediction_samples(S) != S`), or on a malformed x.
        """
        if samples is None:
            samples = self.prediction_samples(DEFAULT_PREDICT_SAMPLES)
        if int(samples) != samples or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        samples = int(samples)
        fixed = self.prediction_samples(samples)
        if fixed != samples:
            raise ValueError(
                f"method {self.name!r} predicts exactly {fixed} samples, got samples={samples!r}; pass samples=None "
                f"or samples=method.prediction_samples(S) (it returns {fixed})"
            )
        self.validate(x)
        with eval_mode(self):
            return self.sample_logits(x, samples)

    @torch.no_grad()
    def predict_deterministic(self, x: Tensor) -> Tensor:
        """Logits [1, batch, classes] from the deterministic sampler (weight scaling, mean masks).

        Raises:
            NotImplementedError: when the method has no deterministic sampler.
            ValueError: on a malformed x.
        """
        sampler = self.deterministic_sampler()
        if sampler is None:
            raise NotImplementedError(
                f"method {self.name!r} has no deterministic prediction; use predict(x, samples=S)"
            )
        self.validate(x)
        with eval_mode(self):
            return self.net(x, sampler).unsqueeze(0)

    def resolve_specs(self, overrides: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, GroupSpec]:
        """`group_defaults` with per-group overrides applied (for example {"backbone": {"lr": 0.01}}).

        Raises:
            KeyError: for an unknown group or option.
        """
        return resolve_group_specs(self.group_defaults(), overrides)

    def make_optimizers(self, overrides: Mapping[str, Mapping[str, object]] | None = None) -> Optimizers:
        """One optimiser per non-empty parameter group, from `resolve_specs(overrides)`.

        Returns:
            `Optimizers`: a dict group name -> optimiser that also carries the specs (`train_step` clips with them).
        """
        specs = self.resolve_specs(overrides)
        groups = self.param_groups()
        return Optimizers({name: build_optimizer(groups[name], specs[name]) for name in groups if groups[name]}, specs)

    def train_step(self, x: Tensor, y: Tensor, optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, float]:
        """One plain-PyTorch training step: losses, one backward, gradient clipping, every optimiser steps.

        Args:
            x, y: a labelled batch (as `training_losses`).
            optimizers: from `make_optimizers`; clipping follows its specs (a plain mapping: `group_defaults`).

        Returns:
            Every loss and log value of the step as a float.

        Raises:
            NonFiniteLossError: when a loss is NaN or infinite (nothing is updated).
        """
        self.train()
        result = self.training_losses(x, y)
        raise_if_nonfinite(result, self.name)
        for optimizer in optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        sum(result.losses.values()).backward()  # type: ignore[union-attr]  # a method has at least one loss
        specs = optimizers.specs if isinstance(optimizers, Optimizers) else self.group_defaults()
        if any(spec.clip_norm is not None for spec in specs.values()):  # listing the groups only when needed
            clip_group_gradients(self.param_groups(), specs)
        for optimizer in optimizers.values():
            optimizer.step()
        return {k: float(v.detach()) for k, v in {**result.losses, **result.logs}.items()}


def repeated_pass(net: MaskedNet, x: Tensor, samples: int, sampler: MaskSampler | None) -> Tensor:
    """Logits [samples, batch, classes] of one pass over x repeated `samples` times, sample-major.

    Rows s*B .. (s+1)*B-1 of the expanded batch are sample s, so the S samples run as one batched pass,
    not a loop; a sampler draws a fresh mask for every row.
    """
    expanded = x.repeat(samples, *([1] * (x.dim() - 1)))
    return net(expanded, sampler).reshape(samples, x.shape[0], -1)


class eval_mode:  # lower case: used like a function, `with eval_mode(module):`
    """Context manager: module in eval mode inside, previous mode restored after."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.was_training = module.training

    def __enter__(self) -> None:
        self.module.eval()

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.was_training)


def resolve_group_specs(
    defaults: Mapping[str, GroupSpec], overrides: Mapping[str, Mapping[str, object]] | None
) -> dict[str, GroupSpec]:
    """Apply per-group overrides (for example {"backbone": {"lr": 0.01}}) to the defaults."""
    specs = dict(defaults)
    for group, changes in (overrides or {}).items():
        if group not in specs:
            raise KeyError(f"unknown parameter group {group!r}; this method has {sorted(specs)}")
        valid = set(GroupSpec.__dataclass_fields__)
        unknown = set(changes) - valid
        if unknown:
            raise KeyError(f"unknown optimiser option(s) {sorted(unknown)} for group {group!r}; valid: {sorted(valid)}")
        specs[group] = GroupSpec(**{**specs[group].__dict__, **changes})
    return specs


def build_optimizer(params: list[nn.Parameter], spec: GroupSpec) -> torch.optim.Optimizer:
    """Adam (fused where this torch and device allow it: the same maths in fewer kernels) or SGD for one group.

    Fused Adam on CPU needs torch >= 2.4 (2.1 is supported): where it is refused, plain Adam.
    """
    if spec.optimizer == "adam":
        if all(p.device.type in ("cpu", "cuda") for p in params):
            try:
                return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
            except (RuntimeError, ValueError):
                pass
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov, weight_decay=spec.weight_decay
        )
    raise ValueError(f"unknown optimizer {spec.optimizer!r}; use 'adam' or 'sgd'")


def clip_group_gradients(groups: Mapping[str, list[nn.Parameter]], specs: Mapping[str, GroupSpec]) -> None:
    """Clip each group's gradient norm where its spec asks for it."""
    for name, params in groups.items():
        clip = specs[name].clip_norm
        if clip is not None and params:
            torch.nn.utils.clip_grad_norm_(params, clip)


def raise_if_nonfinite(result: StepResult, method: str) -> None:
    """Stop training on a NaN or infinite loss, with every loss and log value as the diagnostic."""
    bad = [name for name, value in result.losses.items() if not torch.isfinite(value).all()]
    if bad:
        values = {k: float(v.detach()) for k, v in {**result.losses, **result.logs}.items()}
        raise NonFiniteLossError(
            f"{method}: non-finite loss in group(s) {bad}; all values this step: {values}. "
            "Lower the learning rate of that group, enable gradient clipping, or check the input data."
        )


def site_rates(net: nn.Module, rate: float | None, default: float) -> list[float]:
    """One drop rate per mask site: `rate` for every site when given; else the rate of the `nn.Dropout` each site
    of a `gflowout.wrap` net replaced (its `dropout_rates`), so a user's model keeps its own rates; else
    `default` for every site (backbones without rates of their own: MLP, CifarResNet18)."""
    sites = getattr(net, "sites", ())
    if rate is not None:
        return [float(rate)] * len(sites)
    rates = getattr(net, "dropout_rates", None) or {}
    return [float(rates.get(site.name, default)) for site in sites]
