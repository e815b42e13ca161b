"""gflowout.wrap on a user's own modules: a small transformer encoder classifier, and the errors."""

import math

import pytest
import torch
from torch import nn

import gflowout
from gflowout.methods import method_class
from gflowout.nets.sites import apply_mask
from gflowout.nets.wrap import WrappedNet


class TinyTransformer(nn.Module):
    """A batch-first transformer encoder classifier over [batch, tokens, features]."""

    def __init__(self, features=8, d_model=16, classes=3):
        super().__init__()
        self.embed = nn.Linear(features, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x):
        return self.head(self.drop(self.encoder(self.embed(x)).mean(dim=1)))


@pytest.fixture
def wrapped():
    torch.manual_seed(0)
    return gflowout.wrap(TinyTransformer(), input_shape=(5, 8), num_classes=3)


def test_sites_follow_execution_order_with_their_widths(wrapped):
    names = [(s.name.removeprefix("module."), s.width, s.kind) for s in wrapped.sites]
    per_layer = lambda i: [  # noqa: E731 - attention output, feed-forward hidden, feed-forward output
        (f"encoder.layers.{i}.dropout1", 16, "unit"),
        (f"encoder.layers.{i}.dropout", 32, "unit"),
        (f"encoder.layers.{i}.dropout2", 16, "unit"),
    ]
    assert names == per_layer(0) + per_layer(1) + [("drop", 16, "unit")]
    assert wrapped.dropout_rates["module.drop"] == pytest.approx(0.3)


def test_wrap_copies_by_default_and_all_ones_is_the_original_eval_model():
    torch.manual_seed(0)
    original = TinyTransformer().eval()
    net = gflowout.wrap(original, (5, 8), 3).eval()
    assert isinstance(original.drop, nn.Dropout)  # untouched
    x = torch.randn(4, 5, 8)
    ones = lambda site, h: apply_mask(site, h, torch.ones(h.shape[0], site.width))  # noqa: E731
    with torch.no_grad():
        assert torch.allclose(net(x, ones), original(x), atol=1e-5)


def test_masks_apply_at_every_site_even_in_eval_without_grad(wrapped):
    # PyTorch's fused transformer fast path would skip the sites here; every site must still be visited.
    wrapped.eval()
    visited = []
    with torch.no_grad():
        wrapped(torch.randn(2, 5, 8), lambda site, h: visited.append(site.index) or h)
    assert visited == list(range(7))


def test_zero_mask_on_the_last_site_leaves_the_head_bias(wrapped):
    zero_last = lambda site, h: h * 0 if site.index == 6 else h  # noqa: E731
    out = wrapped(torch.randn(2, 5, 8), zero_last)
    assert torch.allclose(out, wrapped.module.head.bias.expand(2, 3))


class _NoDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


class _Twice(_NoDropout):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.fc(self.drop(self.drop(x)))


class _Unused(_NoDropout):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.spare = nn.Dropout(0.5)

    def forward(self, x):
        return self.fc(self.drop(x))


class _Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3)
        self.drop = nn.Dropout2d(0.2)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.drop(self.conv(x)).mean(dim=(2, 3)))


def test_clear_errors_for_unwrappable_modules():
    with pytest.raises(ValueError, match="no nn.Dropout"):
        gflowout.wrap(_NoDropout(), (4,), 2)
    with pytest.raises(ValueError, match=r"\['drop'\] are called more than once"):
        gflowout.wrap(_Twice(), (4,), 2)
    with pytest.raises(ValueError, match=r"\['spare'\] are never called"):
        gflowout.wrap(_Unused(), (4,), 2)
    with pytest.raises(ValueError, match="logits of shape \\(batch, 5\\)"):
        gflowout.wrap(_Unused(), (4,), 5, skip=["spare"])
    with pytest.raises(ValueError, match="trace forward .* failed"):
        gflowout.wrap(_Unused(), (7,), 2, skip=["spare"])
    with pytest.raises(ValueError, match="not modules"):
        gflowout.wrap(_Unused(), (4,), 2, skip=["nope"])


class _Aliased(nn.Module):
    """One nn.Dropout reachable under two names; the forward uses the Sequential's path."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.block = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), self.drop)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.block(x))


def test_a_dropout_under_two_names_becomes_one_site_at_both():
    net = gflowout.wrap(_Aliased(), (4,), 2)
    assert [s.name for s in net.sites] == ["module.drop"]
    assert net.module.block[2] is net.module.drop and not isinstance(net.module.block[2], nn.Dropout)
    visited = []
    net(torch.randn(3, 4), lambda site, h: visited.append(site.index) or h)
    assert visited == [0]  # the path the forward takes is the site (it used to stay a plain nn.Dropout)
    with pytest.raises(
        ValueError, match="no nn.Dropout"
    ):  # skipping either name leaves the layer (and so nothing) to wrap
        gflowout.wrap(_Aliased(), (4,), 2, skip=["block.2"])


def test_dropout_rates_of_zero_or_one_are_refused_early():
    for rate in (0.0, 1.0):
        module = _Unused()
        module.drop.p = rate
        with pytest.raises(ValueError, match=rf"'drop' has p = {rate}; a mask site needs 0 < p < 1"):
            gflowout.wrap(module, (4,), 2, skip=["spare"])


def test_the_trace_batch_is_made_on_the_modules_device():
    """A module that is not on the CPU ('meta' stands in for a GPU here) is traced on its own device."""
    module = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2)).to("meta")
    net = gflowout.wrap(module, (4,), 2)
    assert [(s.width, s.kind) for s in net.sites] == [(8, "unit")]


def test_skip_leaves_a_dropout_alone_and_channel_dropout_becomes_a_channel_site():
    net = gflowout.wrap(_Unused(), (4,), 2, skip=["spare"])
    assert isinstance(net, WrappedNet) and [s.name for s in net.sites] == ["module.drop"]
    assert isinstance(net.module.spare, nn.Dropout)
    conv = gflowout.wrap(_Conv(), (1, 8, 8), 2)
    assert [(s.width, s.kind) for s in conv.sites] == [(6, "channel")]
    conv_plain = _Conv()
    conv_plain.drop = nn.Dropout(0.2)  # element-wise dropout on conv maps: masked per channel
    assert [(s.width, s.kind) for s in gflowout.wrap(conv_plain, (1, 8, 8), 2).sites] == [(6, "channel")]


def test_mc_dropout_keeps_the_wrapped_modules_own_rates_by_default(wrapped):
    # a new user's MCDropout(wrap(model)) got keep 0.5 everywhere instead of the model's own rates
    assert method_class("mc_dropout")(wrapped).keep_probs == pytest.approx([0.9] * 6 + [0.7])
    assert method_class("mc_dropout")(wrapped, keep_prob=None).keep_probs == pytest.approx([0.9] * 6 + [0.7])
    assert method_class("mc_dropout")(wrapped, keep_prob=0.6).keep_probs == pytest.approx([0.6] * 7)  # explicit wins
    mlp = gflowout.MLP(input_shape=(3,), hidden=(4,), num_classes=2)  # no rates of its own: the paper's 0.5
    assert method_class("mc_dropout")(mlp).keep_probs == (0.5,)


@pytest.mark.parametrize(
    "name, options",
    [
        ("none", {}),
        ("mc_dropout", {}),
        ("concrete", {"dataset_size": 64}),
        ("contextual", {}),
        ("contextual", {"variant": "gaussian"}),
        ("gflowout", {}),
        ("id_gflowout", {"dataset_size": 64}),
    ],
)
def test_every_method_trains_and_predicts_on_the_wrapped_transformer(wrapped, name, options):
    method = method_class(name)(wrapped, **options)
    optimizers = method.make_optimizers()
    x, y = torch.randn(6, 5, 8), torch.randint(0, 3, (6,))
    before = [p.detach().clone() for p in wrapped.parameters()]
    logs = method.train_step(x, y, optimizers)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, wrapped.parameters()))
    assert method.predict(x, samples=4).shape == (4, 6, 3)


@pytest.mark.parametrize("shape", [784, "784", (784.0,), (0, 4)])
def test_input_shape_must_be_a_tuple_of_positive_ints(shape):
    module = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    with pytest.raises(TypeError, match="input_shape must be a tuple of positive ints.*e.g. \\(784,\\)"):
        gflowout.wrap(module, input_shape=shape, num_classes=2)


def test_concrete_and_contextual_start_at_the_wrapped_modules_own_rates(wrapped):
    concrete = method_class("concrete")(wrapped, dataset_size=64)
    assert concrete.drop_probabilities.tolist() == pytest.approx([0.1] * 6 + [0.3])
    assert method_class("concrete")(
        wrapped, dataset_size=64, init_drop=0.2
    ).drop_probabilities.tolist() == pytest.approx([0.2] * 7)
    contextual = method_class("contextual")(wrapped)
    keep_logits = [float(b.outer.bias.mean()) * contextual.k for b in contextual.bottlenecks]
    # the bottleneck's output bias starts at logit(1 - r) / k: r from each replaced nn.Dropout
    assert [1 / (1 + math.exp(-logit)) for logit in keep_logits] == pytest.approx([0.9] * 6 + [0.7])
    mlp = gflowout.MLP(input_shape=(3,), hidden=(4,), num_classes=2)  # no rates of its own: the methods' defaults
    assert method_class("concrete")(mlp, dataset_size=8).drop_probabilities.tolist() == pytest.approx([0.1])
