"""Tutorial: adding a method. A toy method, Gaussian dropout (multiplicative N(1, alpha) noise), on the seam.

Runs in seconds: `python docs/tutorials/toy_method.py`. The documentation page "Adding a method" shows
this file; a test imports `GaussianDropout` from it, trains it and names it in a config as
"toy_method:GaussianDropout".
"""

from __future__ import annotations

import argparse

# --8<-- [start:method]
import torch
from torch import Tensor, nn

from gflowout.methods.base import DropoutMethod, GroupSpec, StepResult
from gflowout.methods.none import accuracy_of, backbone_spec, classification_step
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSampler, Site, apply_mask


class GaussianDropout(DropoutMethod):
    """Gaussian dropout (Srivastava et al., 2014): every unit times z ~ N(1, alpha).

    drop_rate: the Bernoulli rate p it stands in for; alpha = p / (1 - p) gives
        that dropout's variance. One parameter group, "backbone" (cross-entropy).
    """

    name = "gaussian_dropout"

    def __init__(self, net: MaskedNet, drop_rate: float = 0.5) -> None:
        super().__init__(net)
        if not 0.0 < drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in (0, 1), got {drop_rate}")
        self.alpha = drop_rate / (1.0 - drop_rate)

    # 1. parameter groups and their optimiser defaults (one optimiser per group)
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.net.parameters())}

    def group_defaults(self) -> dict[str, GroupSpec]:
        # the baselines' backbone optimiser, so that a comparison is fair
        return {"backbone": backbone_spec(self.net)}

    # 2. the sampler: called at each site with its activation, returns it masked
    def noisy(self, site: Site, activation: Tensor) -> Tensor:
        shape = (activation.shape[0], site.width)  # per example and unit/channel
        noise = 1.0 + self.alpha**0.5 * torch.randn(shape, device=activation.device)
        # scale=1.0: a site's "width / number kept" rescaling is for 0/1 masks
        return apply_mask(site, activation, noise.to(activation.dtype), scale=1.0)

    # 3. one loss per parameter group, from a labelled batch
    def compute_losses(self, x: Tensor, y: Tensor) -> StepResult:
        cross_entropy, logits = classification_step(self.net, x, y, self.noisy)
        loss = cross_entropy.mean()
        logs = {"accuracy": accuracy_of(logits, y)}
        return StepResult(losses={"backbone": loss}, logs=logs)

    # 4. the label-free sampler of predict(x, samples=S); optional: a deterministic one
    def prediction_sampler(self) -> MaskSampler | None:
        return self.noisy

    def deterministic_sampler(self) -> MaskSampler | None:
        return lambda site, activation: activation  # E[z] = 1: the plain network


# --8<-- [end:method]


def main(steps: int = 200) -> dict[str, float]:
    """Train the toy method on synthetic blobs with the plain-PyTorch loop; return its accuracy."""
    # --8<-- [start:use]
    import gflowout
    from gflowout.eval.predictive import mean_probs

    torch.manual_seed(0)
    centres = 3 * torch.randn(4, 10)  # 4 classes, 10 features
    y = torch.randint(0, 4, (600,))
    x = centres[y] + torch.randn(600, 10)

    net = gflowout.MLP(input_shape=(10,), hidden=(64, 64), num_classes=4)
    method = GaussianDropout(net, drop_rate=0.3)
    optimizers = method.make_optimizers()
    for _step in range(steps):
        batch = torch.randint(0, 500, (64,))
        method.train_step(x[batch], y[batch], optimizers)
    logits = method.predict(x[500:], samples=8)  # [8, 100, 4]
    accuracy = (mean_probs(logits).argmax(1) == y[500:]).float().mean().item()
    print(f"gaussian dropout: accuracy {accuracy:.3f} on 100 held-out points")
    # --8<-- [end:use]
    return {"accuracy": accuracy}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training batches")
    main(parser.parse_args().steps)
