"""`fit(config, out_dir)`: train one method with Lightning, then evaluate the best checkpoint on the test split.

A run folder holds:

    config.yaml              the resolved configuration (rewritten atomically)
    checkpoints/last.ckpt    written every `trainer.checkpoint_every_n_steps` steps and at every epoch end
    checkpoints/best.ckpt    lowest validation NLL of the S-sample predictive (`val/nll`)
    logs/version_N/          CSV metrics (one version per start or resume)
    tb/version_N/            TensorBoard events
    results.json             test metrics of best.ckpt (and the per-rank weight digests of the last weights)

Multi-GPU / multi-node: `devices`, `accelerator`, `strategy="ddp"` and `num_nodes` go to Lightning's
Trainer; start the command once per node under torchrun or SLURM as Lightning documents (on one
machine Lightning starts the other processes itself). Each rank trains on its shard of every batch
(batch_size is per process: the global batch is batch_size x world size); validation and test
metrics are exact sums over all ranks' shards, and the test split is evaluated once.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint, Timer
from lightning.pytorch.loggers import CSVLogger

from gflowout.atomic import atomic_write_json, atomic_write_text
from gflowout.checkpoint import (
    check_expected,
    checkpoint_metadata,
    metadata_of,
    read_checkpoint,
)
from gflowout.config import ExperimentConfig
from gflowout.errors import ConfigError
from gflowout.peak_memory import peak_rss_mb, reset_peak_rss
from gflowout.provenance import code_provenance
from gflowout.training.build import build_datamodule, build_method_for, dataset_shape, validate_model_options
from gflowout.training.checkpoint_io import AtomicCheckpointIO
from gflowout.training.loggers import PhaseTensorBoardLogger
from gflowout.training.module import MethodModule
from gflowout.training.resume import check_resume_config
from gflowout.writable import writable_folder

BEST_MONITOR = "val/nll"
TIMER_STATE = "Timer"  # the key of the Timer's state in a checkpoint's "callbacks" (Callback.state_key)


class LastCheckpoint(Checkpoint):
    """Write checkpoints/last.ckpt every `every_n_steps` training steps, at the end of every epoch, and
    after the last batch when `trainer.max_steps` stops the run.

    A `Checkpoint` subclass, so Lightning runs its epoch-end hook after the module's (the epoch's
    validation and bookkeeping are in the file). An epoch cut short by max_steps gets no epoch-end
    save: Lightning would record that epoch as done, and a resume would silently skip its remaining
    batches; the batch-end save of the stopping batch resumes mid-epoch instead. Conversely the
    epoch's last batch gets no batch-end save: that file would come before the epoch's validation,
    and Lightning resumes it as "epoch done", so a run killed during that validation would skip it
    (and its chance to be the best checkpoint); the epoch-end save after the validation covers it.
    """

    def __init__(self, path: Path, every_n_steps: int) -> None:
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.sanity_checking:
            return
        # Count training batches, not Lightning's global_step (one per optimiser step: 3 per batch for GFlowOut).
        progress = trainer.fit_loop.epoch_loop.batch_progress
        if progress.current.ready >= trainer.num_training_batches:
            return  # the epoch's last batch: the epoch-end save, after its validation, covers it (see above)
        batches = progress.total.ready
        stopping = 0 < trainer.max_steps <= trainer.global_step
        if stopping or (self.every_n_steps and batches % self.every_n_steps == 0):
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.current.ready < trainer.num_training_batches:
            return  # cut short by max_steps (see the class docstring)
        trainer.save_checkpoint(self.path, weights_only=False)


class BestCheckpoint(ModelCheckpoint):
    """checkpoints/best.ckpt (lowest `val/nll`) that keeps its best score when the run folder has moved.

    Lightning restores the best score only when the checkpoint's recorded folder equals the current one;
    a run folder reached by another path on resume (moved, a symlink, a cluster's scratch mounted
    elsewhere) lost it, and the next validation replaced best.ckpt whatever its score. The recorded
    paths are rewritten into the current folder before they are restored.
    """

    @property
    def state_key(self) -> str:
        # the key Lightning's ModelCheckpoint files its state under, so a checkpoint resumes with its best score
        # whichever of the two wrote it
        return "ModelCheckpoint" + super().state_key[len(type(self).__qualname__) :]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old is not None and self.dirpath is not None and old != self.dirpath:

            def moved(path: Any) -> Any:
                return str(Path(self.dirpath) / Path(path).name) if path else path  # type: ignore[arg-type]  # not None here: set before use

            state_dict = dict(
                state_dict,
                dirpath=self.dirpath,
                best_model_path=moved(state_dict.get("best_model_path")),
                kth_best_model_path=moved(state_dict.get("kth_best_model_path")),
                last_model_path=moved(state_dict.get("last_model_path")),
                best_k_models={moved(k): v for k, v in (state_dict.get("best_k_models") or {}).items()},
            )
        super().load_state_dict(state_dict)


def weight_digest(module: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer (name, dtype, bytes): equal digests mean bit-identical weights."""
    return state_digest(module.state_dict())


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """`weight_digest` of a state dict {name: tensor}."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(
            tensor.detach().cpu().contiguous().numpy().tobytes()
            if tensor.dtype != torch.bfloat16
            else tensor.detach().float().cpu().numpy().tobytes()
        )
    return digest.hexdigest()


class _NoAdvertisingTips(logging.Filter):
    """Drops Lightning's '💡 Tip: ... try installing ...' lines (cloud-service advertising, not run information)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


def silence_lightning_tips() -> None:
    """Install `_NoAdvertisingTips` on the loggers Lightning's rank-zero messages go through (once)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoAdvertisingTips) for f in logger.filters):
            logger.addFilter(_NoAdvertisingTips())


def _training_seconds(trainer: pl.Trainer) -> float | None:
    """Seconds of training (validation epochs included) summed over the sessions of a resumed run, from
    Lightning's Timer; the time a killed session spent after its last checkpoint is not counted (that work was
    done again). None without the Timer (a trainer built elsewhere)."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)  # type: ignore[attr-defined]  # Trainer.callbacks is a list
    return float(timer.time_elapsed("train")) if timer is not None else None


def build_trainer(config: ExperimentConfig, out_dir: Path, **overrides: Any) -> pl.Trainer:
    """The Lightning Trainer of a run: atomic checkpoints, best + last, CSV and TensorBoard loggers."""
    silence_lightning_tips()
    t = config.trainer
    checkpoints = out_dir / "checkpoints"
    best = BestCheckpoint(
        dirpath=checkpoints,
        filename="best",
        monitor=BEST_MONITOR,
        mode="min",
        save_top_k=1,
        save_last=False,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    # Lightning's Timer keeps the training time in every checkpoint and adds it back on a resume: the run's
    # train_time_s is then its whole training, not the last session's
    # (a max_time override becomes the Timer's duration: Lightning ignores max_time beside a Timer of our own,
    # and the limit then counts the earlier sessions of a resumed run too)
    callbacks = [
        best,
        LastCheckpoint(checkpoints / "last.ckpt", t.checkpoint_every_n_steps),
        Timer(duration=overrides.pop("max_time", None), verbose=False),
    ]
    if t.enable_progress_bar:
        from lightning.pytorch.callbacks import TQDMProgressBar

        callbacks.append(TQDMProgressBar(refresh_rate=max(1, min(t.log_every_n_steps, 20))))
    loggers = [CSVLogger(out_dir, name="logs"), PhaseTensorBoardLogger(out_dir, name="tb", default_hp_metric=False)]
    kwargs: dict[str, Any] = dict(
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        precision=t.precision,
        devices=t.devices,
        accelerator=t.accelerator,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        log_every_n_steps=t.log_every_n_steps,
        deterministic=t.deterministic,
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=t.enable_progress_bar,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # our samplers shard by rank themselves (and resume mid-epoch)
        limit_val_batches=t.limit_val_batches,
        check_val_every_n_epoch=t.val_every_n_epochs,
        enable_model_summary=False,
        default_root_dir=out_dir,
    )
    # strategy "ddp" is Lightning's plain DDP: every shipped method uses all its parameters each step (checked
    # with 2 ranks); a user's method that skips some can pass "ddp_find_unused_parameters_true".
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)


def fit(
    config: ExperimentConfig,
    out_dir: str | Path,
    resume: bool = False,
    datamodule: Any = None,
    prepare_method: Callable[[Any], None] | None = None,
    **trainer_overrides: Any,
) -> Path:
    """Train `config`'s method into run folder `out_dir`, test best.ckpt, and return the folder.

    Args:
        config: the experiment (data, model, method, optimisers, trainer); see `gflowout.config`.
        out_dir: the run folder: config.yaml, checkpoints/last.ckpt and best.ckpt, logs, results.json.
        resume: continue from checkpoints/last.ckpt (mid-epoch included); with no last.ckpt yet it starts
            afresh, so the same command can be requeued. Without `resume`, a folder that already holds
            checkpoints is refused rather than overwritten.
        datamodule: an already built LightningDataModule (default: built from `config.data`).
        prepare_method: called with the freshly built method before training starts afresh (not on a resume,
            whose checkpoint holds everything), e.g. to load a trained backbone (`gflowout.posthoc`).
        **trainer_overrides: extra keyword arguments of `lightning.pytorch.Trainer`.

    Returns:
        `out_dir` as a Path; its results.json holds the test metrics of best.ckpt and its validation NLL.

    Raises:
        ConfigError: `out_dir` is a file or holds another run, the checkpoint to resume was made with other
            settings, or an option does not fit its method or backbone.
        NonFiniteLossError: a loss became NaN or infinite (training stops at that step).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {str(out_dir)!r} is a file, not a run folder; choose another --out")
    writable_folder(out_dir, "run folder", "--out")  # before any work: a read-only --out must not cost a training
    last = out_dir / "checkpoints" / "last.ckpt"
    if last.exists() and not resume:
        raise ConfigError(
            f"run folder {str(out_dir)!r} already holds {last.name}; pass --resume to continue it "
            "or choose another --out"
        )
    if not last.exists() and rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # rank_zero_only.rank is set by Lightning at import
        # rank 0 only: under DDP the other ranks start after rank 0 wrote config.yaml into this very folder
        _refuse_another_run(out_dir, config, resume)
    ckpt_path = None
    all_sessions = True  # whether train_time_s below covers every session of the run
    if resume and last.exists():
        checkpoint = read_checkpoint(last)
        saved = metadata_of(checkpoint, str(last))
        all_sessions = TIMER_STATE in checkpoint.get("callbacks", {})  # written before the Timer: its time is lost
        del checkpoint  # Lightning reads the file again; do not hold a second copy through the training
        check_expected(saved, config, str(last))
        check_resume_config(saved["config"], config.to_dict(), str(out_dir))
        ckpt_path = str(last)
    validate_model_options(config)
    pl.seed_everything(config.seed, workers=True, verbose=False)

    datamodule = build_datamodule(config.data) if datamodule is None else datamodule
    datamodule.prepare_data()
    datamodule.setup("fit")
    train_size = len(datamodule.train_dataloader().dataset)
    num_classes, input_shape = dataset_shape(datamodule, config.data)
    method = build_method_for(config, num_classes, input_shape, dataset_size=train_size)
    if prepare_method is not None and ckpt_path is None:
        prepare_method(method)
    metadata = checkpoint_metadata(config, num_classes, input_shape, train_size)
    module = MethodModule(method, config, datamodule, metadata)

    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # rank_zero_only.rank is set by Lightning at import
        atomic_write_text(out_dir / "config.yaml", config.to_yaml())
    if config.trainer.max_steps > 0 and "max_steps" not in trainer_overrides:
        # trainer.max_steps counts batches; Lightning's global step counts optimiser steps (one per group).
        trainer_overrides["max_steps"] = config.trainer.max_steps * len(module.group_names)
    trainer = build_trainer(config, out_dir, **trainer_overrides)
    started = time.perf_counter()
    measured = reset_peak_rss()  # this run's training alone, also when one process trains several runs
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own, on torch 2.13
        warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*")
        trainer.fit(module, ckpt_path=ckpt_path, weights_only=True)
        train_seconds = _training_seconds(trainer)  # now: testing best.ckpt below reloads the Timer's saved state
        peak_mb = peak_rss_mb() if measured else None  # the training's peak, before the test pass
        digests = trainer.strategy.all_gather(_digest_tensor(module.method))
        datamodule.setup("test")
        best_path = out_dir / "checkpoints" / "best.ckpt"
        trainer.test(module, ckpt_path=str(best_path) if best_path.exists() else None, verbose=False, weights_only=True)
    if trainer.is_global_zero:
        digest_rows = digests.reshape(-1, digests.shape[-1]) if digests.dim() > 1 else digests.reshape(1, -1)
        results = {
            "method": config.method.name,
            "backbone": config.model.backbone,
            "dataset": config.data.name,
            "seed": config.seed,
            "test": module.last_metrics["test"],
            "best_val_nll": _score(trainer),
            "best_checkpoint": str(best_path) if best_path.exists() else None,  # None: stopped before any validation
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "batches": trainer.fit_loop.epoch_loop.batch_progress.total.completed,
            "world_size": trainer.world_size,
            "val_samples": module.method.prediction_samples(config.trainer.val_samples),  # a deep ensemble: its M
            "fit_time_s": time.perf_counter() - started,  # training and test of this call (a resume: since it)
            "train_time_s": train_seconds,  # the training over every session, validation included
            "train_time_all_sessions": all_sessions and train_seconds is not None,
            "train_peak_rss_mb": peak_mb,  # resident memory of this session's training, rank 0 (None: not Linux)
            "rank_weight_digests": [_hex(row) for row in digest_rows],
            **code_provenance(),
        }
        atomic_write_json(out_dir / "results.json", results)
    trainer.strategy.barrier("results")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # a clean exit; otherwise gloo ranks linger for seconds at shutdown
    return out_dir


def _refuse_another_run(out_dir: Path, config: ExperimentConfig, resume: bool) -> None:
    """A folder that holds a run (config.yaml, results.json) but no checkpoint is never silently overwritten:
    without --resume it is refused; with --resume its config.yaml must be this config (then it starts afresh)."""
    held = [name for name in ("config.yaml", "results.json") if (out_dir / name).is_file()]
    if not held:
        return
    if not resume:
        raise ConfigError(
            f"run folder {str(out_dir)!r} already holds a run ({', '.join(held)}) and no checkpoint; "
            "choose another --out, or delete the folder to redo that run"
        )
    saved_path = out_dir / "config.yaml"
    try:
        saved = yaml.safe_load(saved_path.read_text()) if saved_path.is_file() else None
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{saved_path} is unreadable ({error}); choose another --out or delete the folder") from None
    if not isinstance(saved, dict):
        raise ConfigError(
            f"run folder {str(out_dir)!r} holds {', '.join(held)} but no readable config.yaml: it cannot be "
            "matched against this config; choose another --out or delete the folder"
        )
    check_resume_config(saved, config.to_dict(), str(out_dir))  # another config's results are never overwritten
    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # rank_zero_only.rank is set by Lightning at import
        print(f"no checkpoint in {out_dir}: starting that run afresh (same config)", file=sys.stderr)


def _digest_tensor(module: torch.nn.Module) -> torch.Tensor:
    """The weight digest as 32 uint8 values (all_gather works on tensors), on the module's device."""
    device = next(module.parameters()).device
    return torch.tensor(list(bytes.fromhex(weight_digest(module))), dtype=torch.int64, device=device)


def _hex(row: torch.Tensor) -> str:
    return bytes(int(v) for v in row.tolist()).hex()


def _score(trainer: pl.Trainer) -> float | None:
    callback = trainer.checkpoint_callback
    score = getattr(callback, "best_model_score", None)
    return float(score) if score is not None else None
