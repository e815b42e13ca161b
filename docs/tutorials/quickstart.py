"""Tutorial: the library in a dozen lines. GFlowOut on a small MLP, trained and used for prediction.

Runs on synthetic data on a laptop CPU: `python docs/tutorials/quickstart.py`. The home page and the page
"Downstream protocols" show parts of this file; a test runs it.
"""

from __future__ import annotations

import argparse

import torch


def toy_data(n: int = 1200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four Gaussian blobs in 10 dimensions: x [n, 10], labels [n]."""
    generator = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(4, 10, generator=generator)
    y = torch.randint(0, 4, (n,), generator=generator)
    return centres[y] + torch.randn(n, 10, generator=generator), y


def main(steps: int = 300) -> dict[str, float]:
    """Train GFlowOut for `steps` batches; return held-out accuracy and mean mutual information."""
    torch.manual_seed(0)
    x, y = toy_data()
    x_train, y_train, x_test, y_test = x[:1000], y[:1000], x[1000:], y[1000:]
    # --8<-- [start:train]
    import gflowout

    net = gflowout.MLP(input_shape=(10,), hidden=(64, 64), num_classes=4)
    method = gflowout.GFlowOut(net)  # or gflowout.MCDropout(net), ...
    optimizers = method.make_optimizers()  # one optimiser per parameter group
    for _step in range(steps):
        batch = torch.randint(0, len(x_train), (64,))
        logs = method.train_step(x_train[batch], y_train[batch], optimizers)
    logits = method.predict(x_test, samples=20)  # [20, 200, 4]; predict takes no label
    # --8<-- [end:train]
    # --8<-- [start:predictive]
    from gflowout.eval.predictive import mean_probs, mutual_information

    probs = mean_probs(logits)  # the Bayesian model average, [200, 4]
    epistemic = mutual_information(logits)  # sample disagreement, [200], nats
    accuracy = (probs.argmax(dim=1) == y_test).float().mean().item()
    # --8<-- [end:predictive]
    print(f"losses of the last step: { {k: round(v, 3) for k, v in logs.items()} }")
    print(f"accuracy {accuracy:.3f}, mean mutual information {epistemic.mean().item():.4f}")
    return {"accuracy": accuracy, "mutual_information": epistemic.mean().item()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training batches")
    main(parser.parse_args().steps)
