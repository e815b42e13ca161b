"""Concrete dropout: the relaxation, the published regulariser with N, the learned rate's direction."""

import math

import pytest
import torch

from gflowout.methods.concrete import ConcreteDropout, consumer_weights, relaxed_keep_mask
from gflowout.nets.mlp import MLP
from gflowout.nets.resnet import CifarResNet18

SAMPLES = 40000


def test_relaxed_masks_approach_bernoulli_keep_at_low_temperature():
    torch.manual_seed(0)
    drop = 0.3
    logit = torch.tensor(math.log(drop / (1 - drop)))
    bound = 5 * math.sqrt(drop * (1 - drop) / SAMPLES)
    near_binary = {}
    for temperature in (1.0, 0.1, 0.01):
        z = relaxed_keep_mask(logit, (SAMPLES,), temperature)
        # P(z > 1/2) = P(logit u < -logit p) = 1 - p exactly, at any temperature
        assert abs(float((z > 0.5).float().mean()) - (1 - drop)) <= bound
        near_binary[temperature] = float(((z < 0.01) | (z > 0.99)).float().mean())
    low = relaxed_keep_mask(logit, (SAMPLES,), 0.01)
    assert near_binary[0.01] > 0.95 > near_binary[1.0]
    assert near_binary[1.0] < near_binary[0.1] < near_binary[0.01]
    # and its mean tends to the Bernoulli mean 1 - p
    assert abs(float(low.mean()) - (1 - drop)) <= bound + 0.01


def test_regulariser_matches_a_hand_computation_with_n_from_the_caller():
    torch.manual_seed(1)
    net = MLP(input_shape=(6,), hidden=(5, 4), num_classes=3)
    method = ConcreteDropout(net, dataset_size=1234, init_drop=0.2)
    assert method.weight_reg == pytest.approx(1e-8 / 1234) and method.dropout_reg == pytest.approx(2 / 1234)
    # the weights reading each site: the next Linear, then the head
    assert [c[0] is w for c, w in zip(consumer_weights(net), [net.hidden[3].weight, net.head.weight])] == [True, True]
    method = ConcreteDropout(net, dataset_size=1234, weight_reg=0.01, dropout_reg=0.1)
    with torch.no_grad():
        method.drop_logits.copy_(torch.tensor([math.log(0.2 / 0.8), math.log(0.6 / 0.4)]))
    weight_term, entropy_term = method.regularisers()
    p = [0.2, 0.6]
    norms = [float(net.hidden[3].weight.detach().pow(2).sum()), float(net.head.weight.detach().pow(2).sum())]
    expected_weight = sum(0.01 * n / (1 - q) for n, q in zip(norms, p))
    expected_entropy = sum(0.1 * k * (q * math.log(q) + (1 - q) * math.log(1 - q)) for k, q in zip([5, 4], p))
    assert weight_term.item() == pytest.approx(expected_weight, rel=1e-5)
    assert entropy_term.item() == pytest.approx(expected_entropy, rel=1e-5)


def test_resnet_consumers_come_from_the_backbone():
    net = CifarResNet18(mask_blocks="last2")
    method = ConcreteDropout(net, dataset_size=100)
    assert method._consumers[0] == [net.blocks[7].conv1.weight] and method._consumers[1] == [net.head.weight]


@pytest.mark.parametrize("bad", [0, -5, None, 2.5, True])
def test_dataset_size_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="dataset_size"):
        ConcreteDropout(MLP(input_shape=(3,), hidden=(4,), num_classes=2), dataset_size=bad)


def _train_drop_rate(dataset_size, init_drop, steps=150):
    torch.manual_seed(0)
    x = torch.randn(256, 2)
    y = (x[:, 0] > 0).long()  # noise-free, linearly separable
    method = ConcreteDropout(MLP(input_shape=(2,), hidden=(16,), num_classes=2), dataset_size, init_drop=init_drop)
    optimizers = method.make_optimizers({"backbone": {"lr": 0.01}, "dropout": {"lr": 0.02}})
    for _ in range(steps):
        method.train_step(x, y, optimizers)
    return float(method.drop_probabilities[0])


def test_learned_drop_rate_moves_the_way_data_and_regulariser_demand():
    # Large N: the regulariser is negligible and noise only hurts a noise-free fit, so p falls.
    assert _train_drop_rate(dataset_size=1_000_000, init_drop=0.5) < 0.4
    # N = 1: the entropy term dominates and pulls p up toward 1/2.
    assert _train_drop_rate(dataset_size=1, init_drop=0.1) > 0.15


def test_objective_gradient_on_the_drop_logits_matches_finite_differences_with_the_same_noise():
    torch.manual_seed(2)
    method = ConcreteDropout(MLP(input_shape=(5,), hidden=(6, 4), num_classes=3).double(), dataset_size=10).double()
    x, y = torch.randn(8, 5, dtype=torch.float64), torch.randint(0, 3, (8,))

    def objective():
        torch.manual_seed(11)  # the same uniforms every call: a deterministic function of the logits
        return sum(method.training_losses(x, y).losses.values())

    (gradient,) = torch.autograd.grad(objective(), [method.drop_logits])
    step = 1e-6
    for site in range(2):
        with torch.no_grad():
            method.drop_logits[site] += step
            upper = float(objective())
            method.drop_logits[site] -= 2 * step
            lower = float(objective())
            method.drop_logits[site] += step
        assert float(gradient[site]) == pytest.approx((upper - lower) / (2 * step), rel=1e-4, abs=1e-8)
