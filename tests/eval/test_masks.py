"""Mask analysis: the diversity measures against hand computations, the recorder recovers the applied masks
through the mask-site seam, leaves every method's predictions bit-identical, and deterministic masks give zero."""

from __future__ import annotations

import math

import pytest
import torch

from gflowout.eval.masks import (
    Diversity,
    class_mean_masks,
    inter_sample_diversity,
    intra_sample_diversity,
    masks_from_multipliers,
    mean_masks,
    recording,
    sample_major,
    shuffled_mean_masks,
)
from gflowout.methods import method_class
from gflowout.nets.mlp import MLP
from gflowout.nets.sites import apply_mask

METHODS = [
    ("gflowout", {"dataset_size": 100}),
    ("id_gflowout", {"dataset_size": 100}),
    ("mc_dropout", {}),
    ("concrete", {"dataset_size": 100}),
    ("contextual", {"variant": "bernoulli"}),
    ("contextual", {"variant": "gaussian"}),
    ("none", {}),
]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny tensors: one torch thread."""


def test_intra_sample_diversity_by_hand():
    # one input, three masks of four units: pair distances 1/4, 2/4, 1/4 -> mean 1/3, max 1/2
    masks = torch.tensor([[1.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]).unsqueeze(1)
    got = intra_sample_diversity(masks)
    assert got.mean == pytest.approx(1 / 3) and got.max == pytest.approx(0.5)
    # a second input with identical masks halves the average
    two = torch.cat([masks, torch.ones(3, 1, 4)], dim=1)
    assert intra_sample_diversity(two).mean == pytest.approx(1 / 6)
    assert intra_sample_diversity(two).max == pytest.approx(0.25)


def test_inter_sample_diversity_by_hand_with_and_without_undetermined_units():
    means = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])  # pair distances 1/2, 1/2, 1 -> mean 2/3, max 1
    got = inter_sample_diversity(means)
    assert got.mean == pytest.approx(2 / 3) and got.max == pytest.approx(1.0)
    # an undetermined unit (NaN) is left out of the pairs that involve it: (0,1): |1-0| / 1 = 1; (0,2): 1/2; (1,2): 1
    with_nan = torch.tensor([[1.0, 0.0], [0.0, math.nan], [1.0, 1.0]])
    got = inter_sample_diversity(with_nan)
    assert got.mean == pytest.approx((1 + 0.5 + 1) / 3) and got.max == pytest.approx(1.0)


def test_mean_and_class_masks_by_hand():
    masks = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]])  # [S=2, batch=2, width=2]
    means = mean_masks(masks)
    torch.testing.assert_close(means, torch.tensor([[0.5, 0.0], [0.0, 0.5]]))
    per_class = class_mean_masks(means, torch.tensor([1, 1]), classes=3)
    torch.testing.assert_close(per_class[1], torch.tensor([0.25, 0.25], dtype=torch.float64))
    assert per_class[0].isnan().all()


def test_multipliers_become_masks():
    multipliers = torch.tensor(
        [[2.0, 0.0, 2.0, 2.0], [0.5, 0.25, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [3.0, math.nan, 0.0, 3.0]]
    )
    got = masks_from_multipliers(multipliers)
    expected = torch.tensor([[1.0, 0, 1, 1], [0.5, 0.25, 0, 1], [0, 0, 0, 0], [1, math.nan, 0, 1]])
    torch.testing.assert_close(got, expected, equal_nan=True)


def test_recorder_recovers_the_masks_a_sampler_applied():
    torch.manual_seed(0)
    net = MLP(input_shape=(5,), num_classes=3, hidden=(7, 6), rescale=True)
    chosen = {0: (torch.rand(4, 7) < 0.5).float(), 1: (torch.rand(4, 6) < 0.5).float()}
    chosen[0][0] = 0.0  # a row with every unit dropped

    def known(site, activation):
        return apply_mask(site, activation, chosen[site.index])  # rescaled by width / kept

    with recording(net) as recorder:
        net(torch.randn(4, 5), known)
    for index, mask in chosen.items():
        torch.testing.assert_close(recorder.masks[index][0], mask)


@pytest.mark.parametrize("name, options", METHODS, ids=[f"{n}-{o.get('variant', '')}".rstrip("-") for n, o in METHODS])
def test_recording_leaves_predictions_unchanged(name, options):
    torch.manual_seed(0)
    method = method_class(name)(MLP(input_shape=(6,), num_classes=3, hidden=(12, 10)), **options)
    x = torch.randn(5, 6)
    torch.manual_seed(1)
    plain = method.predict(x, samples=4)
    torch.manual_seed(1)
    with recording(method.net) as recorder:
        recorded = method.predict(x, samples=4)
    assert torch.equal(plain, recorded)
    for site in method.net.sites:
        (masks,) = recorder.masks[site.index]
        stacked = sample_major(masks, samples=4, batch=5)
        assert stacked.shape == (4, 5, site.width)
        assert float(stacked.nan_to_num(0.5).min()) >= -1.0 and float(stacked.nan_to_num(0.5).max()) <= 1.0


@pytest.mark.parametrize("name, options", [("none", {}), ("mc_dropout", {"keep_prob": 1.0})])
def test_deterministic_masks_have_zero_diversity(name, options):
    torch.manual_seed(0)
    method = method_class(name)(MLP(input_shape=(6,), num_classes=3, hidden=(12, 10)), **options)
    with recording(method.net) as recorder:
        method.predict(torch.randn(5, 6), samples=3)
    for site in method.net.sites:
        masks = sample_major(recorder.masks[site.index][0], samples=3, batch=5)
        assert torch.equal(masks, torch.ones_like(masks))
        assert intra_sample_diversity(masks) == Diversity(0.0, 0.0)
        assert inter_sample_diversity(mean_masks(masks)).mean == 0.0


def test_mc_dropout_masks_are_binary_at_the_keep_rate():
    torch.manual_seed(0)
    method = method_class("mc_dropout")(MLP(input_shape=(6,), num_classes=3, hidden=(200,)), keep_prob=0.3)
    with recording(method.net) as recorder:
        method.predict(torch.randn(50, 6), samples=4)
    masks = recorder.masks[0][0]
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert float(masks.mean()) == pytest.approx(0.3, abs=0.01)
    # independent Bernoulli(0.3) masks: expected pair distance 2 * 0.3 * 0.7 = 0.42
    assert intra_sample_diversity(sample_major(masks, 4, 50)).mean == pytest.approx(0.42, abs=0.01)


def test_shuffled_means_remove_input_dependence_but_keep_the_noise_floor():
    generator = torch.Generator().manual_seed(0)
    # input-dependent masks: input i always keeps unit (i mod 2), never the other
    masks = torch.zeros(8, 40, 2)
    masks[:, ::2, 0] = 1.0
    masks[:, 1::2, 1] = 1.0
    assert inter_sample_diversity(mean_masks(masks)).mean == pytest.approx(20 / 39)  # pairs of different parity
    floor = inter_sample_diversity(shuffled_mean_masks(masks, generator)).mean
    assert floor < 0.25  # mixed inputs: means near 1/2 on both units
    # input-independent masks: the floor and the measure agree closely
    independent = (torch.rand(8, 200, 30, generator=generator) < 0.5).float()
    plain = inter_sample_diversity(mean_masks(independent)).mean
    shuffled = inter_sample_diversity(shuffled_mean_masks(independent, generator)).mean
    assert shuffled == pytest.approx(plain, rel=0.05)


def test_channel_sites_of_the_resnet_are_recorded_too():
    from gflowout.nets.resnet import CifarResNet18

    torch.manual_seed(0)
    method = method_class("mc_dropout")(CifarResNet18(num_classes=10), keep_prob=0.5)
    x = torch.randn(3, 3, 32, 32)
    torch.manual_seed(2)
    plain = method.predict(x, samples=2)
    torch.manual_seed(2)
    with recording(method.net) as recorder:
        assert torch.equal(method.predict(x, samples=2), plain)
    for site in method.net.sites:
        assert site.kind == "channel"
        masks = sample_major(recorder.masks[site.index][0], samples=2, batch=3)
        known = masks[~masks.isnan()]
        assert set(known.unique().tolist()) <= {0.0, 1.0} and 0.3 < float(known.mean()) < 0.7
