"""GFlowOut and ID-GFlowOut on the other backbones.

CifarResNet18 (channel sites) and a wrapped transformer (token sites).
"""

import pytest
import torch
from torch import nn

from gflowout.methods.generators import LogPartition
from gflowout.methods.gflowout import GFlowOut, PosteriorSampler
from gflowout.methods.id_gflowout import IDGFlowOut


def check_one_step_and_prediction(method, x, y):
    """One optimiser step changes every group; prediction gives [samples, batch, classes] with finite logits."""
    optimizers = method.make_optimizers()
    before = {name: [p.detach().clone() for p in params] for name, params in method.param_groups().items()}
    logs = method.train_step(x, y, optimizers)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
    for name, params in method.param_groups().items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], params)), f"group {name!r} did not train"
    logits = method.predict(x, samples=3)
    assert logits.shape == (3, x.shape[0], method.net.num_classes) and torch.isfinite(logits).all()


@pytest.mark.parametrize("mask_blocks, sites", [("last2", 2), ("all", 8)])
def test_resnet_channel_sites(mask_blocks, sites):
    from gflowout.nets.resnet import CifarResNet18

    torch.manual_seed(0)
    net = CifarResNet18(num_classes=10, mask_blocks=mask_blocks, input_shape=(3, 16, 16))
    assert len(net.sites) == sites and all(s.kind == "channel" for s in net.sites)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 3, 5, 9])
    method = GFlowOut(net)
    # A channel mask switches whole feature maps off: the masked block output is zero on dropped channels.
    sampler = PosteriorSampler(method.posterior, method.prior, y, temperature=2.0)
    seen = []

    def recording(site, activation):
        out = sampler(site, activation)
        seen.append((sampler.chain.masks[-1], out))
        return out

    with torch.no_grad():
        net(x, recording)
    for mask, out in seen:
        dropped = mask == 0
        per_channel = out.abs().flatten(2).amax(dim=2)  # [batch, channels]
        assert dropped.any() and per_channel[dropped].max() == 0 and per_channel[~dropped].min() > 0
    check_one_step_and_prediction(method, x, y)
    check_one_step_and_prediction(
        IDGFlowOut(CifarResNet18(mask_blocks=mask_blocks, input_shape=(3, 16, 16)), dataset_size=50000), x, y
    )


@pytest.mark.parametrize("shape, features", [((1, 28, 28), 784), ((3, 32, 32), 3 * 18 * 18), ((40, 64), 1024)])
def test_log_partition_pools_large_inputs(shape, features):
    torch.manual_seed(0)
    log_z = LogPartition(shape, num_classes=10)
    assert log_z.input_layer.in_features == features
    out = log_z(torch.randn(5, *shape), torch.tensor([0, 1, 2, 3, 4]))
    assert out.shape == (5,) and torch.isfinite(out).all()
    x = torch.randn(2, *shape)
    labels = torch.tensor([4, 4])
    assert log_z(x, labels)[0] != log_z(x, labels)[1], "log Z must depend on the input"
    assert log_z(x, labels)[0] != log_z(x, torch.tensor([7, 4]))[0], "log Z must depend on the label"


class TinyTransformer(nn.Module):
    """Embedding of 8 features per token, one encoder layer with dropout, mean-pooled classifier."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.encoder = nn.TransformerEncoderLayer(16, nhead=2, dim_feedforward=32, dropout=0.1, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(16, 3))

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def test_wrapped_transformer_token_sites():
    from gflowout.nets.wrap import wrap

    torch.manual_seed(0)
    net = wrap(TinyTransformer(), input_shape=(5, 8), num_classes=3)
    assert len(net.sites) >= 2
    x, y = torch.randn(6, 5, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    check_one_step_and_prediction(GFlowOut(net), x, y)
    check_one_step_and_prediction(
        IDGFlowOut(wrap(TinyTransformer(), input_shape=(5, 8), num_classes=3), dataset_size=600), x, y
    )
