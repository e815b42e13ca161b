"""The harness's pure parts against independent references: lr schedules, samplers (the streamed metrics:
tests/eval/test_streaming.py)."""

from __future__ import annotations

import pytest
import torch

from gflowout.config import ScheduleConfig
from gflowout.training.loaders import EpochSampler, ResumableLoader, ShardSampler, epoch_permutation
from gflowout.training.schedules import scheduled_lr


@pytest.mark.parametrize("kind", ["multistep", "cosine"])
def test_lr_schedule_matches_torch_schedulers(kind: str) -> None:
    base, epochs = 0.05, 60
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=base)
    if kind == "multistep":
        schedule = ScheduleConfig(kind="multistep", milestones=[25, 40], gamma=0.1)
        reference = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[25, 40], gamma=0.1)
    else:
        schedule = ScheduleConfig(kind="cosine", t_max=50, eta_min=1e-4)
        reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=50, eta_min=1e-4)
    for epoch in range(epochs):
        expected = optimizer.param_groups[0]["lr"]
        if kind == "cosine" and epoch > 50:  # torch's closed form restarts upward after T_max; ours holds eta_min
            expected = 1e-4
        assert scheduled_lr(base, schedule, epoch, epochs) == pytest.approx(expected, rel=1e-9), epoch
        optimizer.step()
        reference.step()
    assert scheduled_lr(base, ScheduleConfig(), 150, epochs) == base


def test_epoch_order_is_a_function_of_seed_and_epoch() -> None:
    assert torch.equal(epoch_permutation(50, 3, 7), epoch_permutation(50, 3, 7))
    assert not torch.equal(epoch_permutation(50, 3, 7), epoch_permutation(50, 3, 8))
    assert not torch.equal(epoch_permutation(50, 3, 7), epoch_permutation(50, 4, 7))
    before = torch.get_rng_state()
    list(EpochSampler(50, seed=3))
    assert torch.equal(torch.get_rng_state(), before), "sampling order must not consume the global RNG"


def test_rank_shards_interleave_into_the_global_order() -> None:
    """Rank r takes every 2nd index: the two ranks' j-th batches of 4 are the one-process j-th batch of 8."""
    one = list(EpochSampler(37, seed=1, rank=0, world_size=1))
    shards = [list(EpochSampler(37, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 19  # padded with the first index
    for j in range(0, 4):
        union = sorted(shards[0][4 * j : 4 * j + 4] + shards[1][4 * j : 4 * j + 4])
        assert union == sorted(one[8 * j : 8 * j + 8])
    assert sorted(set(shards[0] + shards[1])) == list(range(37))
    evaluation = [ShardSampler(37, r, 2) for r in range(2)]
    assert sorted(list(evaluation[0]) + list(evaluation[1])) == list(range(37))  # each example exactly once


def test_resumable_loader_skips_only_the_batches_done() -> None:
    dataset = torch.utils.data.TensorDataset(torch.arange(23))

    def make() -> ResumableLoader:
        sampler = EpochSampler(23, seed=5)
        return ResumableLoader(torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler))

    first = make()
    first.sampler.set_epoch(2)
    batches = []
    for index, (batch,) in enumerate(first):
        batches.append(batch)
        if index == 2:
            state = first.state_dict()
    assert state == {"epoch": 2, "batches_done": 3} and len(first) == 6
    resumed = make()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)  # Lightning sets the same epoch again on restart
    rest = [b for (b,) in resumed]
    assert len(rest) == 3 and all(torch.equal(a, b) for a, b in zip(rest, batches[3:]))
    resumed.sampler.set_epoch(3)  # the next epoch is whole again
    assert len(list(resumed)) == 6


def test_cuda_rng_states_restore_only_on_the_devices_this_process_sees(monkeypatch) -> None:
    """A checkpoint of a run that saw 2 GPUs, resumed where 1 is visible, failed in set_rng_state_all
    (IndexError). Simulated: no GPU here; torch.cuda answers as a 1-GPU machine."""
    import torch

    from gflowout.training.rng_state import capture_rng_state, restore_rng_state

    state = capture_rng_state()
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8), torch.ones(16, dtype=torch.uint8)]  # two devices' states
    restored: list[tuple[int, int]] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(
        torch.cuda, "set_rng_state", lambda new_state, device="cuda": restored.append((int(new_state[0]), device))
    )
    monkeypatch.setattr(
        torch.cuda, "set_rng_state_all", lambda states: [torch.cuda.default_generators[i] for i in range(len(states))]
    )
    restore_rng_state(state)
    assert restored == [(0, 0)]
