"""GFlowOut's reference engine (`methods.reference_sampler`: the generator modules called site by site, autograd)
against the default fused engine (`trajectory_policy`): for the same weights and seed, the same masks, the same
log q and log p, the same three losses and the same gradient of every parameter, in float64. Exploration is on
(temperature 2, epsilon 0.2), so the draws of both engines from the random stream must line up too."""

from __future__ import annotations

import pytest
import torch

from gflowout.methods.gflowout import GFlowOut, PosteriorSampler
from gflowout.methods.reference_sampler import ReferencePosteriorSampler


def backbone_and_batch(kind: str):
    if kind == "mlp":
        from gflowout.nets.mlp import MLP

        return MLP(hidden=(12, 12, 12)), torch.rand(6, 1, 28, 28)
    from gflowout.nets.resnet import CifarResNet18

    return CifarResNet18(mask_blocks="all", input_shape=(3, 8, 8), width=4), torch.randn(6, 3, 8, 8)  # widths 4..32


def twin_methods(kind: str) -> tuple[GFlowOut, GFlowOut, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net, x = backbone_and_batch(kind)
    options = dict(train_temperature=2.0, epsilon=0.2, generator_hidden=(6, 5), branch_out=3)
    fused = GFlowOut(net, **options).double()
    reference = GFlowOut(backbone_and_batch(kind)[0], engine="reference", **options).double()
    reference.load_state_dict(fused.state_dict())
    with torch.no_grad():  # move generator biases off their initial constants so that every term matters
        for a, b in zip(fused.parameters(), reference.parameters()):
            noise = 0.3 * torch.randn_like(a)
            a.add_(noise)
            b.add_(noise)
    return fused, reference, x.double(), torch.tensor([0, 3, 5, 9, 3, 1])


@pytest.mark.parametrize("kind", ["mlp", "resnet"])
def test_reference_and_fused_samplers_draw_the_same_masks_and_scores(kind: str) -> None:
    fused, reference, x, y = twin_methods(kind)
    samplers = []
    for method in (fused, reference):
        torch.manual_seed(3)
        sampler = method.training_sampler(y, 2.0, 0.2, 0.5)
        method.net(x, sampler)
        samplers.append(sampler)
    assert isinstance(samplers[0], PosteriorSampler) and isinstance(samplers[1], ReferencePosteriorSampler)
    assert all(torch.equal(a, b) for a, b in zip(samplers[0].chain.masks, samplers[1].chain.masks))
    assert any(0 < float(m.mean()) < 1 for m in samplers[1].chain.masks)  # real draws, not all kept or all dropped
    (fast_q, fast_p), (plain_q, plain_p) = samplers[0].finish(), samplers[1].finish()
    assert torch.allclose(fast_q, plain_q, rtol=1e-10, atol=1e-10)
    assert torch.allclose(fast_p, plain_p, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["mlp", "resnet"])
def test_reference_and_fused_engines_give_the_same_losses_and_gradients(kind: str) -> None:
    fused, reference, x, y = twin_methods(kind)
    results = []
    for method in (fused, reference):
        torch.manual_seed(4)
        result = method.training_losses(x, y)
        method.zero_grad(set_to_none=True)
        sum(result.losses.values()).backward()
        results.append(result)
    assert set(results[0].losses) == set(results[1].losses) == {"backbone", "posterior", "prior"}
    for name in results[0].losses:
        assert torch.allclose(results[0].losses[name], results[1].losses[name], rtol=1e-10, atol=1e-10), name
    assert float(results[0].logs["keep_rate"]) == float(results[1].logs["keep_rate"])  # the same masks
    for (name, a), b in zip(fused.named_parameters(), reference.parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, rtol=1e-8, atol=1e-10), name


def test_the_reference_engine_scores_forced_masks_like_the_fused_one() -> None:
    fused, reference, x, y = twin_methods("mlp")
    masks = [(torch.rand(6, 12) < 0.5).double() for _ in range(3)]
    fast, plain = fused.score_masks(x, y, masks), reference.score_masks(x, y, masks)
    for key in fast:
        assert torch.allclose(fast[key], plain[key], rtol=1e-10, atol=1e-10), key


def test_the_fused_engine_is_the_default_and_an_unknown_engine_is_refused() -> None:
    from gflowout.nets.mlp import MLP

    net = MLP(input_shape=(5,), hidden=(8,), num_classes=3)
    assert GFlowOut(net).engine == "fused"
    with pytest.raises(ValueError, match="engine must be one of"):
        GFlowOut(net, engine="slow")
