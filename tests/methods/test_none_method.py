"""The "none" method: no masks at training or prediction."""

import torch

from gflowout.methods.none import NoDropout, backbone_spec
from gflowout.nets.mlp import MLP
from gflowout.nets.resnet import CifarResNet18


def test_training_and_prediction_use_the_plain_network():
    torch.manual_seed(0)
    net = MLP(input_shape=(5,), hidden=(8,), num_classes=3)
    method = NoDropout(net)
    x, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 0])
    result = method.training_losses(x, y)
    with torch.no_grad():
        reference = torch.nn.functional.cross_entropy(net(x), y)
    assert torch.allclose(result.losses["backbone"], reference)
    logits = method.predict(x, samples=3)
    assert logits.shape == (3, 4, 3)
    assert torch.equal(logits[0], logits[2]) and torch.allclose(logits[0], net(x).detach())
    assert torch.allclose(method.predict_deterministic(x)[0], logits[0])


def test_backbone_defaults_follow_the_published_scripts():
    mlp = backbone_spec(MLP(input_shape=(3,), hidden=(4,), num_classes=2))
    assert (mlp.optimizer, mlp.lr, mlp.weight_decay) == ("adam", 1e-3, 0.0)
    resnet = backbone_spec(CifarResNet18(mask_blocks="last2"))
    assert (resnet.optimizer, resnet.lr, resnet.weight_decay, resnet.nesterov) == ("sgd", 0.1, 5e-4, True)
