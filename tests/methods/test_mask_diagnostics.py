"""Mask diagnostics (`gflowout.methods.diagnostics`) against independent references: Bernoulli entropies from
torch.distributions, and the trajectory-balance residual from the training engine's exact scores of the same masks."""

from __future__ import annotations

import math

import pytest
import torch

from gflowout.methods import MethodName
from gflowout.methods.diagnostics import bernoulli_entropy
from gflowout.methods.gflowout import GFlowOut
from gflowout.methods.id_gflowout import IDGFlowOut
from gflowout.nets.sites import full_masks
from tests.helpers.methods import batch, small_mlp_method, tiny_method


def test_bernoulli_entropy_matches_torch_distributions_and_stays_finite():
    logits = torch.tensor([-200.0, -5.0, -0.3, 0.0, 2.0, 200.0])
    expected = torch.distributions.Bernoulli(logits=logits.double()).entropy()
    got = bernoulli_entropy(logits)
    assert torch.isfinite(got).all()
    assert torch.allclose(got.double(), expected, atol=1e-6)
    assert abs(float(bernoulli_entropy(torch.zeros(1))) - math.log(2)) < 1e-7


def test_gflowout_residual_equals_the_engines_scores_of_the_same_masks():
    """epsilon = 1 with keep 1 makes every drawn mask all-ones, so the residual can be recomputed from
    `score_masks` (the fused engine: log q, log p, log p(y|x,z), log Z) on all-ones masks."""
    method = small_mlp_method(GFlowOut, epsilon=1.0, epsilon_keep=1.0, beta=0.7)
    x, y = batch(16)
    values = method.mask_diagnostics(x, y)
    scores = method.score_masks(x, y, full_masks(16, method.net.sites))
    residual = scores["log_z"] + scores["log_forward"] - 0.7 * scores["log_likelihood"] - scores["log_prior"]
    assert abs(values["masks/tb_residual"] - float(residual.abs().mean())) < 1e-3 * max(
        1.0, float(residual.abs().mean())
    )
    assert abs(values["masks/log_z"] - float(scores["log_z"].mean())) < 1e-5
    assert values["masks/keep_rate"] == 1.0
    for site in method.net.sites:
        assert values[f"masks/{site.name}/keep_rate"] == 1.0
        for stat in ("q_entropy", "p_entropy"):
            assert 0.0 < values[f"masks/{site.name}/{stat}"] <= math.log(2) + 1e-6
        assert 0.0 < values[f"masks/{site.name}/q_keep"] < 1.0


def test_id_gflowout_residual_centred_residual_and_log_z_gap():
    method = small_mlp_method(IDGFlowOut, dataset_size=500, epsilon=1.0, epsilon_keep=1.0)
    with torch.no_grad():
        method.log_z.fill_(-3.0)
    x, y = batch(16)
    values = method.mask_diagnostics(x, y)
    scores = method.score_masks(x, y, full_masks(16, method.net.sites))
    d = scores["log_forward"] - 500 * scores["log_likelihood"] - scores["log_prior"]  # log q - log R
    tolerance = 1e-4 * float(d.abs().max())
    assert abs(values["masks/tb_residual"] - float((-3.0 + d).abs().mean())) < tolerance
    assert abs(values["masks/centred_residual"] - float((d - d.mean()).abs().mean())) < tolerance
    assert abs(values["masks/log_z_gap"] - (-3.0 + float(d.mean()))) < tolerance
    assert values["masks/log_z"] == -3.0
    # the first site's q is a learned constant: its keep probability is sigmoid of it, by hand
    first = method.net.sites[0]
    constant = method.generators[0].constant.detach()
    assert abs(values[f"masks/{first.name}/q_keep"] - float(torch.sigmoid(constant).mean())) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bf16: a bf16-true run's epoch-end diagnostics
def test_diagnostics_are_finite_and_change_no_weight(dtype):
    for name, options in [
        (MethodName.GFLOWOUT, {}),
        (MethodName.ID_GFLOWOUT, {"dataset_size": 50}),
        (MethodName.CONTEXTUAL, {}),
        (MethodName.CONCRETE, {"dataset_size": 50}),
        (MethodName.MC_DROPOUT, {}),
    ]:
        method = tiny_method(name, options, classes=3).to(dtype)
        before = {k: v.clone() for k, v in method.state_dict().items()}
        x = torch.rand(6, 1, 4, 4).to(dtype)
        y = torch.randint(0, 3, (6,))
        values = method.mask_diagnostics(x, y)
        assert all(math.isfinite(v) for v in values.values()), (name, values)
        assert all(torch.equal(before[k], v) for k, v in method.state_dict().items()), name
        if name is MethodName.MC_DROPOUT:
            assert values == {}  # nothing learned about the masks
        else:
            assert any(k.endswith("keep") for k in values), (name, sorted(values))
