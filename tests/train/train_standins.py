"""Small stand-ins for the harness tests: a synthetic image data module and a tiny MC-dropout method.

Importable by name ("train_standins:SyntheticDataModule") from configs, so the command-line tests in
subprocesses can use them with PYTHONPATH=tests/train.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset, default_collate

from gflowout.methods.base import DropoutMethod, GroupSpec, StepResult
from gflowout.nets.sites import Site, apply_mask


class SyntheticDataModule(pl.LightningDataModule):
    """Four Gaussian class blobs as 1x6x6 "images"; train/val split by `split_seed`, a fixed test set."""

    num_classes = 4
    input_shape = (1, 6, 6)

    def __init__(
        self,
        name: str = "synthetic",
        root=None,
        batch_size: int = 32,
        val_fraction: float = 0.3,
        split_seed: int = 0,
        num_workers: int = 0,
        limit_train=None,
        size: int = 400,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        generator = torch.Generator().manual_seed(1234)
        centres = torch.randn(self.num_classes, 36, generator=generator)

        def draw(n: int) -> TensorDataset:
            labels = torch.randint(0, self.num_classes, (n,), generator=generator)
            x = centres[labels] + 1.5 * torch.randn(n, 36, generator=generator)
            return TensorDataset(x.reshape(n, *self.input_shape), labels)

        full = draw(size)
        order = torch.randperm(size, generator=torch.Generator().manual_seed(split_seed))
        n_val = int(round(val_fraction * size))
        train_idx = order[n_val:]
        if limit_train is not None:
            train_idx = train_idx[:limit_train]
        self.train_set = TensorDataset(*(t[train_idx] for t in full.tensors))
        self.val_set = TensorDataset(*(t[order[:n_val]] for t in full.tensors))
        self.test_set = draw(120)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, collate_fn=StallingCollate())

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set,
            batch_size=self.batch_size,
            collate_fn=StallingCollate("GFLOWOUT_TEST_STALL_VAL_AT", augment=False),
        )

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size)


class StallingCollate:
    """default_collate that, when the environment variable `stall_variable` = k is set, writes a marker and sleeps
    at the k-th batch (GFLOWOUT_TEST_STALL_AT: training batches; GFLOWOUT_TEST_STALL_VAL_AT: validation batches).

    The SIGKILL test uses it to hold a run in the middle of an epoch, or of a validation, until it is killed.
    """

    def __init__(self, stall_variable: str = "GFLOWOUT_TEST_STALL_AT", augment: bool = True) -> None:
        self.calls = 0
        self.stall_variable, self.augment = stall_variable, augment

    def __call__(self, items):
        self.calls += 1
        stall_at = os.environ.get(self.stall_variable)
        if stall_at and self.calls == int(stall_at):
            Path(os.environ["GFLOWOUT_TEST_STALL_MARKER"]).write_text(str(self.calls))
            release = os.environ.get("GFLOWOUT_TEST_STALL_RELEASE")  # a file whose appearance ends the stall
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not (release and Path(release).exists()):
                time.sleep(0.05)
        x, y = default_collate(items)
        if self.augment and os.environ.get(
            "GFLOWOUT_TEST_AUGMENT"
        ):  # random "augmentation" from torch's global RNG, as BatchCollate
            x = x + 0.1 * torch.rand_like(x)
        return x, y


class TinyMC(DropoutMethod):
    """MC dropout with keep probability `keep` (inverted scaling): a stochastic method with one group."""

    name = "tiny_mc"

    def __init__(self, net, keep: float = 0.8, lr: float = 0.01, nan_at_call: int = 0, nan_rank: int = -1) -> None:
        super().__init__(net)
        self.keep = keep
        self.lr = lr
        self.nan_at_call = nan_at_call  # > 0: that call's loss is NaN (the non-finite-loss test)
        self.nan_rank = nan_rank  # >= 0: only on that DDP rank
        self.calls = 0

    def _sampler(self, site: Site, activation: torch.Tensor) -> torch.Tensor:
        mask = (torch.rand(activation.shape[0], site.width, device=activation.device) < self.keep).float()
        return apply_mask(site, activation, mask, scale=1.0 / self.keep)

    def param_groups(self):
        return {"backbone": list(self.net.parameters())}

    def group_defaults(self):
        return {"backbone": GroupSpec(lr=self.lr)}

    def compute_losses(self, x, y) -> StepResult:
        logits = self.net(x, self._sampler)
        loss = torch.nn.functional.cross_entropy(logits, y)
        self.calls += 1
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        if self.calls == self.nan_at_call and self.nan_rank in (-1, rank):
            loss = loss * float("nan")
        return StepResult(losses={"backbone": loss}, logs={"accuracy": (logits.argmax(1) == y).float().mean()})

    def prediction_sampler(self):
        return self._sampler


class TinyNone(TinyMC):
    """No dropout (deterministic): for the DDP-versus-one-process comparison."""

    name = "tiny_none"

    def _sampler(self, site: Site, activation: torch.Tensor) -> torch.Tensor:
        return activation
