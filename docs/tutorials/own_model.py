"""Tutorial: GFlowOut on your own model (a small transformer and a CNN), wrapped with `gflowout.wrap`.

Runs on synthetic data on a laptop CPU: `python docs/tutorials/own_model.py` (`--steps 400` for a
longer run). The documentation page "GFlowOut on your own model" shows this file; a test runs it.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import gflowout
from gflowout.eval.predictive import mean_probs, mutual_information


# --8<-- [start:models]
class TokenClassifier(nn.Module):
    """Transformer encoder over [batch, tokens, features], then a linear head."""

    def __init__(self, features: int = 8, width: int = 32, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Linear(features, width)
        layer = nn.TransformerEncoderLayer(width, nhead=4, dim_feedforward=64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.encoder(self.embed(x)).mean(dim=1)))


class SmallCNN(nn.Module):
    """Two conv blocks with channel dropout, unit dropout before the head."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Dropout2d(0.2),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.Dropout2d(0.2),
            nn.AdaptiveAvgPool2d(1),
        )
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x).flatten(1)))


# --8<-- [end:models]


def toy_data(
    shape: tuple[int, ...], n: int = 512, classes: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable synthetic data: each class adds its own fixed pattern to Gaussian noise.

    For images [channels, H, W] the patterns are coarse (constant on 4 x 4 blocks), so that a
    convolution followed by pooling can see them.
    """
    generator = torch.Generator().manual_seed(seed)
    if len(shape) == 3:
        coarse = 2.0 * torch.randn(classes, shape[0], shape[1] // 4, shape[2] // 4, generator=generator)
        patterns = coarse.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    else:
        patterns = 1.5 * torch.randn(classes, *shape, generator=generator)
    labels = torch.randint(0, classes, (n,), generator=generator)
    return patterns[labels] + torch.randn(n, *shape, generator=generator), labels


# --8<-- [start:train]
def train_and_predict(module: nn.Module, input_shape: tuple[int, ...], steps: int) -> dict[str, float]:
    """Wrap `module`, train GFlowOut on toy data, return accuracy and MI."""
    torch.manual_seed(0)
    x, y = toy_data(input_shape)  # 512 examples: the first 384 train, the rest test
    # every nn.Dropout / nn.Dropout2d of the module becomes a mask site
    net = gflowout.wrap(module, input_shape=input_shape, num_classes=3)
    for site in net.sites:
        print(f"  site {site.index}: {site.name:32s} {site.width:3d} {site.kind}")
    method = gflowout.GFlowOut(net)  # beta = 1: the Bayesian posterior
    optimizers = method.make_optimizers()  # backbone, posterior (+ log Z), prior
    for _step in range(steps):
        batch = torch.randint(0, 384, (64,))
        logs = method.train_step(x[batch], y[batch], optimizers)
    print(f"  last step: backbone loss {logs['backbone']:.3f}, trajectory balance {logs['posterior']:.3f}")
    logits = method.predict(x[384:], samples=10)  # [10, 128, 3]; takes no label
    accuracy = (mean_probs(logits).argmax(1) == y[384:]).float().mean().item()
    return {"accuracy": accuracy, "mutual_information": mutual_information(logits).mean().item()}


# --8<-- [end:train]


def main(steps: int = 150) -> dict[str, dict[str, float]]:
    """Run both models; returns their accuracy and mean mutual information."""
    results = {}
    # --8<-- [start:run]
    print("transformer, tokens [5, 8]:")
    results["transformer"] = train_and_predict(TokenClassifier(), (5, 8), steps)
    print("CNN, images [1, 12, 12]:")
    results["cnn"] = train_and_predict(SmallCNN(), (1, 12, 12), steps)
    # --8<-- [end:run]
    for name, result in results.items():
        print(f"{name}: accuracy {result['accuracy']:.3f}, mean mutual information {result['mutual_information']:.4f}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="training batches per model")
    main(parser.parse_args().steps)
