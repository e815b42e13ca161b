"""`MethodModule`: one LightningModule that trains any `DropoutMethod` with manual optimisation.

Per training step: `method.training_losses(x, y)` gives one loss per parameter group; a non-finite
loss stops training (NonFiniteLossError); one backward of their sum (each loss reaches only its own
group), gradient clipping per group (GroupSpec.clip_norm), then every group's optimiser steps.
Per epoch: `method.set_epoch` (beta schedule) and each group's learning rate = base lr x its
schedule factor at that epoch (gflowout.training.schedules: a pure function of the epoch, so a resume needs
no scheduler state).

Validation and test: under `torch.no_grad`, `method.predict(x, samples=S)` (the S samples batched),
the predictive p(y|x) = mean_s softmax(logits_s); accuracy, NLL = mean -log p(y|x) (from logsumexp,
no clamp), ECE (15 equal-width right-closed bins, the conventions of gflowout.eval.metrics) and the
Brier score, streamed by gflowout.eval.streaming.ClassificationSums. Each rank sums sufficient statistics over
its shard; the sums are all-reduced, so the metrics are exact over the whole split under DDP. `val/nll` (the
S-sample NLL) selects best.ckpt.
Validation and test draw their masks from a generator seeded by (seed, stage, epoch, rank), so they
never disturb the training RNG stream (which is what makes a resumed run bit-identical).
Mask diagnostics (config `diagnostics`, `gflowout.methods.diagnostics`): at the end of every training
epoch, on the first `diagnostics.batch_size` training examples, in eval mode (BatchNorm statistics are
not updated) and a private RNG stream, logged as masks/... (CSV and TensorBoard); a trajectory-balance
residual above `diagnostics.residual_threshold` is warned about and logged as masks/residual_warning.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from gflowout import rng
from gflowout.config import ExperimentConfig, GroupOptimConfig
from gflowout.errors import ConfigError, NonFiniteLossError
from gflowout.eval.streaming import ClassificationSums
from gflowout.methods.base import DropoutMethod, eval_mode, raise_if_nonfinite, resolve_group_specs
from gflowout.training.loaders import EpochSampler, ResumableLoader, ShardSampler, rebuild_loader
from gflowout.training.rng_state import capture_rng_state, restore_rng_state
from gflowout.training.schedules import scheduled_lr


class ResidualWarning(UserWarning):
    """The GFlowNet's trajectory-balance residual stayed above `diagnostics.residual_threshold` this epoch."""


def residual_warning_text(epoch: int, values: dict[str, float], threshold: float, objective: str | None) -> str:
    """The warning's message: the residual, log Z, and the fix that fits what the diagnostics show.

    With a scalar log Z (ID-GFlowOut) the centred residual says how much of it a perfectly placed log Z would
    remove: when most, log Z lags the reward (the log-variance objective removes that lag); when little, the
    policy does not match the reward up to a constant (a noisy reward estimate, or a policy that learns slowly).
    """
    residual = values["masks/tb_residual"]
    text = (
        f"epoch {epoch}: the GFlowNet's trajectory-balance residual mean |log Z + log q - log R| is {residual:.4g} "
        f"nats on the diagnostic batch (threshold diagnostics.residual_threshold = {threshold:g}); "
        f"log Z = {values.get('masks/log_z', math.nan):.4g}. "
    )
    centred = values.get("masks/centred_residual")
    if centred is None:
        return text + (
            "The policy or log Z(x, y) is not keeping up with the reward: try a larger log Z learning rate "
            "(method.options.logz_lr), a smaller beta or more epochs"
        )
    text += f"With the best constant log Z for this batch it would be {centred:.4g} nats: "
    if centred < 0.5 * residual and objective != "vargrad":
        return text + "log Z lags the reward; try method.options.objective=vargrad (log Z from each batch)"
    return text + (
        "the policy does not match the reward up to a constant (ID-GFlowOut's reward, beta * N * "
        "log-likelihood of one example, is a noisy estimate for large N); try a smaller beta or more epochs"
    )


class MethodModule(pl.LightningModule):
    """Trains `method` with one optimiser per parameter group; see the module docstring."""

    def __init__(
        self, method: DropoutMethod, config: ExperimentConfig, datamodule: Any, metadata: dict[str, Any]
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.method = method
        self.config = config
        self.datamodule = datamodule  # plain attribute: not a submodule, never saved
        self.metadata = metadata
        self.group_names = [name for name, params in method.param_groups().items() if params]
        self.optim_blocks: dict[str, GroupOptimConfig] = config.group_optim()
        unknown = sorted(set(self.optim_blocks) - set(method.group_defaults()))
        if unknown:
            raise ConfigError(
                f"config 'optim' names parameter group(s) {unknown} that method {config.method.name!r} does not have; "
                f"its groups: {sorted(method.group_defaults())}"
            )
        overrides = {name: block.spec_overrides() for name, block in self.optim_blocks.items()}
        try:
            self.specs = resolve_group_specs(method.group_defaults(), overrides)
        except (KeyError, TypeError) as error:
            raise ConfigError(f"config 'optim': {error}") from None
        self.metrics = {"val": ClassificationSums(), "test": ClassificationSums()}
        self.last_metrics: dict[str, dict[str, float]] = {}
        self._pending_rng: dict[str, Any] | None = None
        self._epoch_keys: tuple[str, ...] = ()
        self._epoch_sums = torch.zeros(0, dtype=torch.float64)
        self._epoch_count = 0
        self._saved_rng: Any = None
        self._diagnostic_batch: tuple[Tensor, Tensor] | None = None

    # --- optimisers and schedules ------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        overrides = {name: block.spec_overrides() for name, block in self.optim_blocks.items()}
        optimizers = self.method.make_optimizers(overrides)
        self.group_names = list(optimizers)
        for optimizer in optimizers.values():  # the base of every schedule (a method may use several lrs per group)
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        return [optimizers[name] for name in self.group_names]

    def on_train_epoch_start(self) -> None:
        epoch = self.current_epoch
        self.method.set_epoch(epoch)
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        for name, optimizer in zip(self.group_names, optimizers):
            schedule = self.optim_blocks.get(name, GroupOptimConfig()).schedule
            for group in optimizer.param_groups:
                group["lr"] = scheduled_lr(group["initial_lr"], schedule, epoch, self.config.trainer.max_epochs)
            self.log(f"lr/{name}", optimizer.param_groups[0]["lr"], on_step=False, on_epoch=True, sync_dist=True)

    # --- training ----------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        if self.trainer.world_size > 1:
            # Each rank its own mask stream, a function of (seed, step, rank) alone: a DDP run resumed from
            # any checkpoint draws exactly what the uninterrupted run drew (only rank 0's RNG state is saved).
            # One process keeps one stream, saved and restored with the checkpoint.
            rng.seed_stream(self.config.seed, rng.DDP_TRAINING_MASKS, self.global_step, self.global_rank)
        result = self.method.training_losses(x, y)
        self._stop_on_nonfinite(result)
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        self.manual_backward(sum(result.losses.values()))  # type: ignore[arg-type]  # a method has at least one loss
        for name, optimizer in zip(self.group_names, optimizers):
            clip = self.specs[name].clip_norm
            if (
                clip is not None
            ):  # through Lightning; fp16 (a loss scaler) is refused by the config, so grads are unscaled
                self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")  # type: ignore[arg-type]  # Lightning/torch stubs narrower than the API
        for optimizer in optimizers:
            optimizer.step()
        self._record_step(result, x.shape[0])

    def _record_step(self, result: Any, batch_size: int) -> None:
        """Sum this batch's losses and logs for the epoch means, and hand them to Lightning only on the steps its
        loggers write (every `trainer.log_every_n_steps`): a `self.log` call per value and step costs a share of
        the step for values nobody reads (benchmarks/README.md, "The harness"). Rank-local values (no per-step
        all-reduce); rank 0's are written."""
        values = {
            **{f"loss/{k}": v for k, v in result.losses.items()},
            **{f"train/{k}": v for k, v in result.logs.items()},
        }
        stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()]).double()
        keys = tuple(values)
        if self._epoch_keys != keys:
            self._epoch_keys, self._epoch_sums, self._epoch_count = keys, torch.zeros_like(stacked), 0
        self._epoch_sums += stacked * batch_size
        self._epoch_count += batch_size
        if (self.trainer.fit_loop.epoch_loop._batches_that_stepped + 1) % self.trainer.log_every_n_steps == 0:  # type: ignore[attr-defined]  # Lightning/torch stubs narrower than the API
            for key, value in zip(keys, stacked):
                self.log(
                    f"{key}_step",
                    value.float(),
                    prog_bar=key.startswith("loss/"),
                    on_step=True,
                    on_epoch=False,
                    batch_size=batch_size,
                )

    def on_train_epoch_end(self) -> None:
        """The epoch's training means, then its mask diagnostics."""
        self._log_epoch_means()
        self._log_mask_diagnostics()

    def _log_epoch_means(self) -> None:
        """The epoch means of the training losses and logs (over the batches of this process since the epoch began,
        or since a mid-epoch resume)."""
        if self._epoch_keys and self._epoch_count:
            means = self._epoch_sums / self._epoch_count
            for key, value in zip(self._epoch_keys, means):
                self.log(f"{key}_epoch", float(value), on_step=False, on_epoch=True)
        self._epoch_keys, self._epoch_count = (), 0

    def _log_mask_diagnostics(self) -> None:
        """Mask diagnostics of this epoch (see the module docstring); the training RNG stream is left as it was."""
        settings = self.config.diagnostics
        if not settings.enabled:
            return
        saved = capture_rng_state()
        try:
            rng.seed_stream(self.config.seed, rng.DIAGNOSTICS, self.current_epoch, self.global_rank)
            x, y = self._fixed_batch(settings.batch_size)
            with torch.no_grad(), eval_mode(self.method):
                values = self.method.mask_diagnostics(x, y)
        finally:
            restore_rng_state(saved)
        if not values:
            return
        residual = values.get("masks/tb_residual")
        if residual is not None:
            alarm = not residual <= settings.residual_threshold  # NaN alarms too
            values["masks/residual_warning"] = float(alarm)
            if alarm and self.global_rank == 0:
                warnings.warn(
                    residual_warning_text(
                        self.current_epoch, values, settings.residual_threshold, getattr(self.method, "objective", None)
                    ),
                    ResidualWarning,
                    stacklevel=1,
                )
        for name, value in values.items():
            self.log(name, value, on_step=False, on_epoch=True, sync_dist=False, rank_zero_only=True)

    def _fixed_batch(self, size: int) -> tuple[Tensor, Tensor]:
        """The first `size` examples of the training split (cached; its augmentation drawn in the private stream)."""
        if self._diagnostic_batch is None:
            from torch.utils.data import default_collate

            dataset = self.datamodule.train_dataloader().dataset
            items = [dataset[i] for i in range(min(size, len(dataset)))]
            x, y = default_collate(items)[:2]
            self._diagnostic_batch = (x, y)
        x, y = self._diagnostic_batch
        dtype = next(self.method.net.parameters()).dtype
        return x.to(self.device, dtype=dtype if x.is_floating_point() else x.dtype), y.to(self.device).long()

    def _stop_on_nonfinite(self, result: Any) -> None:
        """Raise NonFiniteLossError on a NaN/inf loss; under DDP every rank raises together (no hang)."""
        local_bad = any(not bool(torch.isfinite(v.detach()).all()) for v in result.losses.values())
        if self.trainer.world_size > 1:
            flag = torch.tensor(float(local_bad), device=self.device)
            if float(self.trainer.strategy.reduce(flag, reduce_op="sum")) > 0 and not local_bad:
                raise NonFiniteLossError(
                    f"{self.config.method.name}: another rank got a non-finite loss at step {self.global_step}; "
                    "see that rank's error for the values"
                )
        raise_if_nonfinite(result, self.config.method.name)

    # --- evaluation ----------------------------------------------------------------------------
    def _begin_eval(self, stage: str) -> None:
        self.metrics[stage].reset()
        # Private, reproducible masks for evaluation; the training stream resumes untouched afterwards.
        self._saved_rng = capture_rng_state()
        stream = {"val": rng.VALIDATION, "test": rng.TEST}[stage]
        rng.seed_stream(self.config.seed, stream, self.current_epoch, self.global_rank)

    def _end_eval(self, stage: str) -> None:
        sums = self.metrics[stage].sums.to(self.device)
        sums = self.trainer.strategy.reduce(sums.clone(), reduce_op="sum") if self.trainer.world_size > 1 else sums
        values = self.metrics[stage].compute(sums)
        self.last_metrics[stage] = values  # exact (float64) values, for results.json
        for name in ("accuracy", "nll", "ece", "brier"):
            self.log(f"{stage}/{name}", values[name], prog_bar=name in ("accuracy", "nll"), sync_dist=True)
        self.log(f"{stage}/count", values["count"], sync_dist=True)
        restore_rng_state(self._saved_rng)
        self._saved_rng = None

    def _eval_step(self, stage: str, batch: tuple[Tensor, Tensor]) -> None:
        x, y = batch
        logits = self.method.predict(x, samples=self.method.prediction_samples(self.config.trainer.val_samples))
        self.metrics[stage].update(logits, y)

    def on_validation_epoch_start(self) -> None:
        self._begin_eval("val")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._end_eval("val")

    def on_test_epoch_start(self) -> None:
        self._begin_eval("test")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._end_eval("test")

    # --- data ----------------------------------------------------------------------------------
    def train_dataloader(self) -> ResumableLoader:
        template = self.datamodule.train_dataloader()
        sampler = EpochSampler(
            len(template.dataset),
            seed=self.config.seed,
            shuffle=True,
            rank=self.global_rank,
            world_size=self.trainer.world_size,
        )
        loader = rebuild_loader(template, sampler, seed=self.config.seed)
        return ResumableLoader(loader)

    def val_dataloader(self) -> Any:
        return self._shard(self.datamodule.val_dataloader())

    def test_dataloader(self) -> Any:
        return self._shard(self.datamodule.test_dataloader())

    def _shard(self, template: Any) -> Any:
        size, world = len(template.dataset), self.trainer.world_size
        if size < world:  # a rank with an empty loader stops Lightning (and the others with it) with no clear cause
            raise ConfigError(
                f"an evaluation split has {size} example(s) for {world} processes; each process needs at least one: "
                "raise data.val_fraction (or use fewer processes)"
            )
        sampler = ShardSampler(size, rank=self.global_rank, world_size=world)
        return rebuild_loader(template, sampler, seed=self.config.seed)

    # --- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gflowout"] = self.metadata
        checkpoint["rng_state"] = self._saved_rng if self._saved_rng is not None else capture_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng = checkpoint.get("rng_state")

    def on_train_start(self) -> None:
        # A mid-epoch resume skips on_train_epoch_start: bring the method's schedules to this epoch here too.
        self.method.set_epoch(self.current_epoch)
        # Restore the training RNG stream last, after everything that might draw from it during set-up.
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng)
            self._pending_rng = None
