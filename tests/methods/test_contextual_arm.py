"""Contextual dropout's hand-written ARM gradient against the autograd surrogate it replaced, same uniforms.

`reference_arm_losses` is the previous implementation (commit 3c740b5): keep logits through the
bottleneck modules under autograd, the analytic KL of `bernoulli_kl`, a zero-valued ARM surrogate,
and a pseudo pass of the whole network. Both draw their uniforms with `torch.rand_like` in site
order, so the same seed gives the same masks and the gradients must agree to rounding.
"""

import pytest
import torch
import torch.nn.functional as F

import gflowout.methods.contextual as contextual_module
from gflowout.methods.contextual import ContextualDropout, bernoulli_kl, frozen_batchnorm_stats
from gflowout.methods.contextual_arm import BottleneckPass, bottleneck_backward, bottleneck_forward
from gflowout.nets.mlp import MLP
from gflowout.nets.resnet import CifarResNet18
from gflowout.nets.sites import apply_binary_mask_, apply_mask


def reference_arm_losses(method, x, y):
    """(backbone loss, dropout loss) of the autograd implementation; see the module docstring."""
    logits_by_site, uniforms_by_site, activation_by_site = {}, {}, {}

    def training_sampler(site, activation):
        logits = method.keep_logits(site, activation)
        uniforms = torch.rand_like(logits)
        logits_by_site[site.index], uniforms_by_site[site.index] = logits, uniforms
        activation_by_site[site.index] = activation
        return apply_mask(site, activation, (uniforms < torch.sigmoid(logits.detach())).to(activation.dtype))

    cross_entropy = F.cross_entropy(method.net(x, training_sampler), y, reduction="none")
    kl = sum(
        bernoulli_kl(logits, method.k * method.prior_eta[index]).sum() / x.shape[0]
        for index, logits in logits_by_site.items()
    )
    pseudo_logits_by_site = {}

    def pseudo_sampler(site, activation):
        real_activation = activation_by_site[site.index]
        if activation.shape == real_activation.shape and torch.equal(activation, real_activation):
            threshold = torch.sigmoid(-logits_by_site[site.index].detach())
        else:
            with torch.enable_grad():
                pseudo_logits_by_site[site.index] = method.keep_logits(site, activation)
            threshold = torch.sigmoid(-pseudo_logits_by_site[site.index].detach())
        return apply_mask(site, activation, (uniforms_by_site[site.index] > threshold).to(activation.dtype))

    batch = x.shape[0]
    with torch.no_grad(), frozen_batchnorm_stats(method.net):
        pseudo_ce = F.cross_entropy(method.net(x, pseudo_sampler), y, reduction="none")
        real_ce = cross_entropy.detach()
        # f_j = CE + kl_weight * (KL of every later site) of each trajectory, per example
        prior = method.k * method.prior_eta.detach()
        real_kl = {i: bernoulli_kl(lg.detach(), prior[i]).sum(1) for i, lg in logits_by_site.items()}
        pseudo_kl = {
            i: bernoulli_kl(pseudo_logits_by_site[i].detach(), prior[i]).sum(1)
            if i in pseudo_logits_by_site
            else real_kl[i]
            for i in logits_by_site
        }
        order = list(logits_by_site)
        terms = {}
        for position, index in enumerate(order):
            later = order[position + 1 :]
            real_f = real_ce + method.kl_weight * sum((real_kl[i] for i in later), torch.zeros_like(real_ce))
            pseudo_f = pseudo_ce + method.kl_weight * sum((pseudo_kl[i] for i in later), torch.zeros_like(real_ce))
            terms[index] = (real_f.div(batch).unsqueeze(1), pseudo_f.div(batch).unsqueeze(1))
    surrogate = 0.0
    for index, logits in logits_by_site.items():
        real_term, pseudo_term = terms[index]
        centred = uniforms_by_site[index] - 0.5
        pseudo_logits = pseudo_logits_by_site.get(index)
        if pseudo_logits is None:
            surrogate = surrogate + (logits * centred * (pseudo_term - real_term)).sum()
        else:
            surrogate = surrogate + (pseudo_logits * centred * pseudo_term).sum() - (logits * centred * real_term).sum()
    return cross_entropy.mean(), method.kl_weight * kl + (surrogate - surrogate.detach())


def _dropout_gradients(method, loss):
    params = list(method.param_groups()["dropout"])
    return [g.detach().clone() for g in torch.autograd.grad(loss, params)]


def _compare_with_reference(method, x, y, seed=3, bottleneck_calls=None):
    """Gradients, losses and (optionally) the number of bottleneck evaluations of the new path vs the reference."""
    calls = []

    def counting_forward(*args, **kwargs):
        calls.append(1)
        return bottleneck_forward(*args, **kwargs)

    torch.manual_seed(seed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contextual_module, "bottleneck_forward", counting_forward)
        result = method.training_losses(x, y)
    if bottleneck_calls is not None:
        assert len(calls) == bottleneck_calls
    new_grads = _dropout_gradients(method, result.losses["dropout"])
    torch.manual_seed(seed)
    backbone_loss, dropout_loss = reference_arm_losses(method, x, y)
    old_grads = _dropout_gradients(method, dropout_loss)
    assert torch.allclose(result.losses["backbone"], backbone_loss, rtol=1e-12, atol=0)
    assert torch.allclose(result.losses["dropout"], dropout_loss, rtol=1e-10, atol=1e-12)
    assert len(new_grads) == len(old_grads) > 0
    for new, old in zip(new_grads, old_grads):
        assert new.shape == old.shape
        assert torch.allclose(new, old, rtol=1e-9, atol=1e-12), (new - old).abs().max()
    return new_grads


def _three_site_method(**options):
    """A float64 MLP 6 -> 8 -> 8 -> 8 -> 3 with spread keep probabilities (k = 0.5, N(0, 1) bottleneck weights)."""
    torch.manual_seed(0)
    net = MLP(input_shape=(6,), hidden=(8, 8, 8), num_classes=3).double()
    method = ContextualDropout(net, k=0.5, bottleneck_factor=2, kl_weight=0.7, **options).double()
    with torch.no_grad():
        for p in method.bottlenecks.parameters():
            p.normal_(0.0, 1.0)
        method.prior_eta.add_(torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64) / method.k)
    return method


def test_hand_written_gradient_equals_the_autograd_surrogate_on_three_sites():
    method = _three_site_method()
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))
    # 3 real bottleneck passes + 2 pseudo ones (sites 1 and 2; site 0 reuses the real logits)
    grads = _compare_with_reference(method, x, y, bottleneck_calls=5)
    assert all(g.abs().sum() > 0 for g in grads)  # every parameter, prior included, has signal


def test_hand_written_gradient_when_the_pseudo_pass_equals_the_real_pass():
    # Keep probabilities ~1 at every site: z = z' = 1, so every pseudo activation equals the real one:
    # the reference takes ARM's single term at every site, the new code the two-term form at later
    # sites with phi' = phi (the same value), still evaluating their bottlenecks.
    method = _three_site_method()
    with torch.no_grad():
        for bottleneck in method.bottlenecks:
            bottleneck.outer.bias.fill_(80.0)  # phi = 0.5 * (80 + ...) > 30: sigmoid(-phi) < 1e-13
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    _compare_with_reference(method, x, y, bottleneck_calls=5)


def test_hand_written_gradient_without_a_learned_prior_and_with_a_scaled_loss():
    method = _three_site_method(learn_prior=False)
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    grads = _compare_with_reference(method, x, y)
    assert not method.prior_eta.requires_grad and len(grads) == 12  # bottlenecks only
    torch.manual_seed(3)
    doubled = _dropout_gradients(method, 2.5 * method.training_losses(x, y).losses["dropout"])
    assert all(torch.allclose(d, 2.5 * g, rtol=1e-12) for d, g in zip(doubled, grads))


def test_a_retained_graph_gives_the_same_gradient_twice():
    method = _three_site_method()
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    loss = method.training_losses(x, y).losses["dropout"]
    params = method.param_groups()["dropout"]
    first = torch.autograd.grad(loss, params, retain_graph=True)
    second = torch.autograd.grad(loss, params)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_hand_written_gradient_on_a_resnet_without_resume():
    # Channel sites, batch norm, and the whole-network pseudo pass (CifarResNet18 does not resume).
    torch.manual_seed(1)
    net = CifarResNet18(width=4, input_shape=(3, 8, 8)).double()
    assert net.forward_from_site(0, torch.zeros(2, 4, 8, 8, dtype=torch.float64)) is None
    method = ContextualDropout(net, k=1.0, bottleneck_factor=2).double()
    x, y = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (4,))
    _compare_with_reference(method, x, y)


def test_bottleneck_backward_equals_autograd_through_the_module():
    torch.manual_seed(2)
    method = _three_site_method()
    bottleneck, k = method.bottlenecks[1], method.k
    passes, total = [], 0.0
    for rows in (5, 7):  # two passes accumulate, as real and pseudo passes do
        features = torch.randn(rows, 8, dtype=torch.float64)
        draw = bottleneck_forward(bottleneck, features, k)
        logits = k * bottleneck(features)  # the module under autograd
        assert torch.allclose(draw.logits, logits, rtol=1e-13)
        draw.alpha_grad = torch.randn(rows, 8, dtype=torch.float64)
        total = total + (logits * draw.alpha_grad).sum() / k
        passes.append(draw)
    expected = torch.autograd.grad(
        total, [bottleneck.inner.weight, bottleneck.inner.bias, bottleneck.outer.weight, bottleneck.outer.bias]
    )
    for got, want in zip(bottleneck_backward(bottleneck, passes), expected):
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-13)


def test_an_in_place_change_of_a_saved_activation_is_an_error():
    method = _three_site_method()
    draw = bottleneck_forward(method.bottlenecks[0], torch.randn(3, 8, dtype=torch.float64), method.k)
    draw.alpha_grad = torch.ones(3, 8, dtype=torch.float64)
    bottleneck_backward(method.bottlenecks[0], [draw])  # unchanged: fine
    draw.features.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        bottleneck_backward(method.bottlenecks[0], [draw])


def test_bottleneck_pass_holds_no_graph():
    method = _three_site_method()
    draw = bottleneck_forward(method.bottlenecks[0], torch.randn(3, 8, dtype=torch.float64), method.k)
    assert isinstance(draw, BottleneckPass)
    assert not draw.logits.requires_grad and not draw.hidden.requires_grad


def test_arm_training_steps_lower_the_loss_of_a_small_mlp():
    torch.manual_seed(4)
    method = ContextualDropout(MLP(hidden=(32, 32)))
    optimizers = method.make_optimizers()
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    first = method.train_step(x, y, optimizers)
    for _ in range(20):
        last = method.train_step(x, y, optimizers)
    assert last["cross_entropy"] < first["cross_entropy"]
    assert all(torch.isfinite(p).all() for p in method.parameters())


@pytest.mark.parametrize("kl_weight", [0.0, 1.0])
def test_logged_kl_equals_bernoulli_kl_of_the_keep_logits(kl_weight):
    method = _three_site_method()
    method.kl_weight = kl_weight
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    seen = {}
    torch.manual_seed(5)
    result = method.training_losses(x, y)
    torch.manual_seed(5)

    def record(site, activation):
        logits = method.keep_logits(site, activation)
        seen[site.index] = logits.detach()
        uniforms = torch.rand_like(logits)
        return apply_mask(site, activation, (uniforms < torch.sigmoid(logits.detach())).to(activation.dtype))

    method.net(x, record)
    expected = sum(bernoulli_kl(seen[i], method.k * method.prior_eta[i].detach()).sum() / 8 for i in seen)
    assert torch.allclose(result.logs["kl"], expected, rtol=1e-12)
    assert torch.allclose(result.losses["dropout"].detach(), kl_weight * expected, rtol=1e-12)


def test_apply_binary_mask_in_place_gives_apply_masks_values():
    torch.manual_seed(6)
    mlp_site = MLP(input_shape=(6,), hidden=(8,), num_classes=3).sites[0]  # unit site, rescaled
    resnet_site = CifarResNet18(width=4).sites[0]  # channel site, not rescaled
    for site, activation in ((mlp_site, torch.randn(5, 8)), (resnet_site, torch.randn(5, 4, 3, 3))):
        mask = (torch.rand(5, site.width) < 0.5).float()
        mask[0] = 0.0  # an example with every unit dropped
        expected = apply_mask(site, activation, mask.clone())
        assert torch.equal(apply_binary_mask_(site, activation, mask), expected)


def test_arm_step_runs_under_bf16_autocast_with_float32_bottlenecks():
    # bf16-mixed training: the backbone runs in bf16, the hand-written backward multiplies saved
    # bottleneck tensors with float32 weights, so the bottlenecks must run in float32 (a dtype error before).
    torch.manual_seed(7)
    method = ContextualDropout(MLP(hidden=(16, 16)))
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = method.training_losses(x, y)
    sum(result.losses.values()).backward()
    for p in method.param_groups()["dropout"]:
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
    assert result.logs["kl"].dtype == torch.float32


def test_frozen_norm_stats_cover_instance_norms_with_running_statistics():
    """The ARM pseudo pass must not update running statistics a second time: InstanceNorm with
    track_running_stats keeps them as BatchNorm does (only BatchNorm was frozen before)."""
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.InstanceNorm2d(4, track_running_stats=True), nn.BatchNorm2d(4)).train()
    x = torch.randn(5, 1, 6, 6)
    before = [t.clone() for t in net.buffers()]
    with torch.no_grad(), frozen_batchnorm_stats(net):
        net(x)
    assert all(torch.equal(a, b) for a, b in zip(before, net.buffers()))
    with torch.no_grad():
        net(x)  # the control: outside the context a forward does move them
    assert not torch.equal(before[0], net[1].running_mean) and not torch.equal(before[3], net[2].running_mean)
