"""GFlowOut and ID-GFlowOut reach the exact posterior over masks, checked by enumerating all 2^8 masks.

The backbone has 8 mask sites of one unit each, so the chain of per-site Bernoullis is a full
autoregressive model and the policy family can represent any distribution over the 256 masks.
The backbone (and GFlowOut's prior) stay fixed; only the GFlowNet (generators + log Z) trains.
The reference is computed here, independently of the method's code: masked forward passes with a
hand-written sampler, and Bernoulli probabilities in float64 from `sigmoid`.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gflowout.methods.gflowout import GFlowOut
from gflowout.methods.id_gflowout import IDGFlowOut
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSite, site_features

NUM_SITES = 8
ALL_MASKS = torch.tensor([[(k >> b) & 1 for b in range(NUM_SITES)] for k in range(2**NUM_SITES)], dtype=torch.float32)
INPUTS = torch.tensor([[1.0, -0.5], [-0.8, 0.9], [0.3, 1.2], [0.5, 0.5]])


class OneUnitSitesNet(MaskedNet):
    """2 -> 4 -> [4 one-unit sites] -> 4 -> [4 one-unit sites] -> 3 classes (LeakyReLU, no rescaling)."""

    def __init__(self) -> None:
        super().__init__((2,), 3)
        self.layer1 = nn.Linear(2, 4)
        self.sites1 = nn.ModuleList(MaskSite(1) for _ in range(4))
        self.layer2 = nn.Linear(4, 4)
        self.sites2 = nn.ModuleList(MaskSite(1) for _ in range(4))
        self.head = nn.Linear(4, 3)
        self.register_sites()

    def body(self, x):
        h = F.leaky_relu(self.layer1(x))
        h = torch.cat([site(h[:, i : i + 1]) for i, site in enumerate(self.sites1)], dim=1)
        h = F.leaky_relu(self.layer2(h))
        h = torch.cat([site(h[:, i : i + 1]) for i, site in enumerate(self.sites2)], dim=1)
        return self.head(h)


def fixed_backbone() -> OneUnitSitesNet:
    torch.manual_seed(0)
    net = OneUnitSitesNet()
    with torch.no_grad():  # large weights: the likelihood depends strongly on the mask
        for parameter in net.parameters():
            parameter.mul_(3.0)
    return net


def enumerate_masks(net, x, y, logits_of):
    """For one (x, y) and every mask: log p(y | x, z) and the log-probability of z under a chained
    policy whose site logits are logits_of(site_index, earlier_masks, features, batch); float64 [256]."""
    n = ALL_MASKS.shape[0]
    log_prob = torch.zeros(n, dtype=torch.float64)

    def forced_sampler(site, activation):
        i = site.index
        earlier = ALL_MASKS[:, :i] if i else None
        logits = logits_of(i, earlier, site_features(site, activation), n)
        p = torch.sigmoid(logits.double())[:, 0]
        log_prob.add_(torch.where(ALL_MASKS[:, i] > 0, p.log(), (1 - p).log()))
        return activation * ALL_MASKS[:, i : i + 1]

    with torch.no_grad():
        logits = net(x.expand(n, -1), forced_sampler)
    log_likelihood = torch.log_softmax(logits.double(), dim=1)[:, int(y)]
    return log_likelihood, log_prob


def total_variation(p, q):
    return 0.5 * float((p - q).abs().sum())


def train_posterior(method, x, y, steps, lr_decay=True):
    """Train only the "posterior" group (generators + log Z) by trajectory balance."""
    optimizer = method.make_optimizers()["posterior"]
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, 2.0 * (1.0 - s / steps)))
    for _ in range(steps):
        loss = method.training_losses(x, y).losses["posterior"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()


# beta = 1: the Bayesian posterior on six (input, label) pairs in 300 steps. beta = 0.3 (the tempered posterior: the
# MNIST runs start with beta < 1) on two pairs whose posterior is far from beta = 1's (so a reward that ignored beta
# would miss it), in 200 steps to keep it quick.
PAIRS = {1.0: [(i, label) for i in range(3) for label in (0, 2)], 0.3: [(0, 1), (1, 0)]}
STEPS = {1.0: 300, 0.3: 200}


@pytest.mark.parametrize("beta", sorted(PAIRS, reverse=True))
def test_gflowout_matches_the_exact_posterior_of_each_input_and_label(beta):
    net = fixed_backbone()
    torch.manual_seed(1)
    method = GFlowOut(net, beta=beta, posterior_lr=3e-3, logz_lr=0.1)
    pairs = [(INPUTS[i], torch.tensor(label)) for i, label in PAIRS[beta]]
    backbone_before = [p.detach().clone() for p in net.parameters()]
    prior_before = [p.detach().clone() for p in method.prior.parameters()]

    def reference(x, y, beta=beta):
        """Exact posterior p(z | x, y) ∝ p(y | x, z)^beta p(z | x), log normaliser, and the policy's q(z | x, y)."""
        label = y.expand(ALL_MASKS.shape[0])
        log_likelihood, log_prior = enumerate_masks(net, x[None], y, lambda i, e, f, n: method.prior[i](e, f))
        _, log_q = enumerate_masks(net, x[None], y, lambda i, e, f, n: method.posterior[i](e, f, label))
        log_joint = beta * log_likelihood + log_prior
        log_normaliser = torch.logsumexp(log_joint, dim=0)
        return (log_joint - log_normaliser).exp(), float(log_normaliser), log_q.exp()

    initial_tv = [total_variation(*reference(x, y)[::2]) for x, y in pairs]
    assert min(initial_tv) > 0.15, f"the untrained policy is already close to the posterior: TV {initial_tv}"
    if beta != 1.0:
        untempered_tv = [total_variation(reference(x, y)[0], reference(x, y, beta=1.0)[0]) for x, y in pairs]
        assert min(untempered_tv) > 0.15, f"beta = {beta} gives nearly beta = 1's posterior: TV {untempered_tv}"

    repeats = 516 // len(pairs)  # 516 trajectories per step
    x = torch.stack([p[0] for p in pairs]).repeat(repeats, 1)
    y = torch.stack([p[1] for p in pairs]).repeat(repeats)
    train_posterior(method, x, y, steps=STEPS[beta])

    for (xi, yi), tv0 in zip(pairs, initial_tv):
        posterior, log_normaliser, q = reference(xi, yi)
        assert abs(float(q.sum()) - 1.0) < 1e-6
        tv = total_variation(posterior, q)
        assert tv < 0.05, f"x={xi.tolist()}, y={int(yi)}: TV {tv:.3f} (untrained {tv0:.3f})"
        with torch.no_grad():
            log_z = float(method.log_partition(xi[None], yi[None]))
        print(f"TV {tv:.4f} (untrained {tv0:.3f}), log Z {log_z:.4f} vs {log_normaliser:.4f}")
        assert abs(log_z - log_normaliser) < 0.05, (
            f"x={xi.tolist()}, y={int(yi)}: log Z {log_z:.4f} vs exact {log_normaliser:.4f}"
        )
    # Only the GFlowNet trained: the backbone and the prior are untouched.
    assert all(torch.equal(a, b) for a, b in zip(backbone_before, net.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(prior_before, method.prior.parameters()))


@pytest.mark.parametrize("objective", ["tb", "vargrad"])
def test_id_gflowout_matches_the_exact_dataset_posterior(objective):
    """Trajectory balance and the log-variance objective (log Z = the batch mean of log R - log q) reach the
    enumerated posterior within the same tolerance; under "vargrad" log Z is the last batch's estimate."""
    net = fixed_backbone()
    torch.manual_seed(2)
    data_x, data_y = INPUTS, torch.tensor([0, 2, 1, 0])
    prior_keep = 0.5
    method = IDGFlowOut(
        net,
        dataset_size=len(data_y),
        prior_keep=prior_keep,
        beta=1.0,
        posterior_lr=3e-3,
        logz_lr=0.1,
        objective=objective,
    )

    def reference():
        """Dataset posterior q*(z) ∝ p(z) prod_n p(y_n | x_n, z), its log normaliser, and the policy's q(z)."""
        log_likelihood = torch.zeros(ALL_MASKS.shape[0], dtype=torch.float64)
        for xi, yi in zip(data_x, data_y):
            ll, log_q = enumerate_masks(net, xi[None], yi, lambda i, e, f, n: method.generators[i](e, n))
            log_likelihood += ll
        kept = ALL_MASKS.double().sum(dim=1)
        log_prior = kept * math.log(prior_keep) + (NUM_SITES - kept) * math.log(1 - prior_keep)
        log_joint = log_likelihood + log_prior
        log_normaliser = torch.logsumexp(log_joint, dim=0)
        return (log_joint - log_normaliser).exp(), float(log_normaliser), log_q.exp()

    posterior, log_normaliser, q = reference()
    initial_tv = total_variation(posterior, q)
    assert initial_tv > 0.15, f"the untrained policy is already close to the posterior: TV {initial_tv:.3f}"

    train_posterior(method, data_x.repeat(128, 1), data_y.repeat(128), steps=1500)

    posterior, log_normaliser, q = reference()
    assert abs(float(q.sum()) - 1.0) < 1e-6
    tv = total_variation(posterior, q)
    print(f"TV {tv:.4f} (untrained {initial_tv:.3f}), log Z {method.log_z.item():.4f} vs {log_normaliser:.4f}")
    assert tv < 0.05, f"TV {tv:.3f} (untrained {initial_tv:.3f})"
    if objective == "vargrad":
        # log Z is not learned: its estimate, mean(log R - log q), on a large on-policy (T = 1) batch
        method.train_temperature = 1.0
        method.training_losses(data_x.repeat(1024, 1), data_y.repeat(1024))
        print(f"on-policy estimate of log Z {method.log_z.item():.4f}")
    assert abs(method.log_z.item() - log_normaliser) < 0.05, (
        f"log Z {method.log_z.item():.4f} vs exact {log_normaliser:.4f}"
    )
