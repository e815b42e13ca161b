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


def test_backbone_specs_are_declared_by_the_backbone_and_read_by_every_method():
    """The specs are exactly those the type check in methods/none.py gave; a backbone of a user's own that declares
    another default optimiser gets it in every method, with no change to the methods."""
    from torch import nn

    import gflowout
    from gflowout.methods import method_class
    from gflowout.methods.base import GroupSpec

    adam = GroupSpec(lr=1e-3, weight_decay=0.0, optimizer="adam")
    sgd = GroupSpec(lr=0.1, weight_decay=5e-4, optimizer="sgd", momentum=0.9, nesterov=True)
    wrapped = gflowout.wrap(
        nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.2), nn.Linear(4, 2)), input_shape=(3,), num_classes=2
    )
    assert backbone_spec(MLP(input_shape=(3,), hidden=(4,), num_classes=2)) == adam == backbone_spec(wrapped)
    assert backbone_spec(CifarResNet18(mask_blocks="last2", width=4)) == sgd

    class SGDMLP(MLP):
        def default_optimizer(self) -> GroupSpec:
            return GroupSpec(lr=0.05, optimizer="sgd", momentum=0.5)

    for name, options in [
        ("none", {}),
        ("mc_dropout", {}),
        ("concrete", {"dataset_size": 10}),
        ("contextual", {}),
        ("gflowout", {}),
        ("id_gflowout", {"dataset_size": 10}),
    ]:
        method = method_class(name)(SGDMLP(input_shape=(3,), hidden=(4,), num_classes=2), **options)
        assert method.group_defaults()["backbone"] == GroupSpec(lr=0.05, optimizer="sgd", momentum=0.5), name
