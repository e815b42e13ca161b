"""Every method under CPU bf16 autocast the way Lightning's bf16-mixed runs it (`trainer.precision: bf16-mixed`).

With manual optimisation Lightning calls `manual_backward` inside `training_step`, so the backward runs
inside the precision plugin's autocast, and validation (`predict`) runs inside it too. Two defects lived
there: Contextual dropout's hand-written ARM backward mixed a bf16 product into a float32 in-place sum
("self and mat2 must have the same dtype"), and GFlowOut's / ID-GFlowOut's prediction wrote bf16
generator activations into float32 logits buffers. Each method must train a few steps (backward inside
autocast), keep float32 gradients and parameters, move its loss, and predict finite float probabilities.
"""

from __future__ import annotations

import pytest
import torch

from gflowout.methods import MethodName
from tests.helpers.methods import EVERY_METHOD, EVERY_METHOD_IDS, tiny_method

CLASSES = 5


@pytest.mark.parametrize(("name", "options"), EVERY_METHOD, ids=EVERY_METHOD_IDS)  # every MethodName (checked there)
def test_trains_and_predicts_inside_bf16_autocast(name: MethodName, options: dict) -> None:
    method = tiny_method(name, options, CLASSES)
    optimizers = method.make_optimizers()
    x, y = torch.rand(16, 1, 4, 4), torch.randint(0, CLASSES, (16,))
    totals = []
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            result = method.training_losses(x, y)
            for optimizer in optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            total = sum(result.losses.values())
            total.backward()  # inside autocast, as Lightning's manual_backward under bf16-mixed
        for parameter in method.parameters():
            assert parameter.dtype == torch.float32
            assert parameter.grad is None or (
                parameter.grad.dtype == torch.float32 and torch.isfinite(parameter.grad).all()
            )
        for optimizer in optimizers.values():
            optimizer.step()
        totals.append(float(total.detach()))
    assert all(torch.isfinite(torch.tensor(totals)))
    assert totals[0] != totals[-1]  # the parameters moved
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = method.predict(x[:4], samples=method.prediction_samples(3))  # as bf16-mixed validation calls it
    assert logits.shape == (method.prediction_samples(3), 4, CLASSES) and torch.isfinite(logits.float()).all()


@pytest.mark.parametrize("keep", [0.999, 0.5])
def test_mc_masks_for_bf16_activations_keep_at_the_requested_rate(keep: float) -> None:
    """Uniforms drawn in bf16 (the activation's dtype under autocast) quantise keep_prob: 0.999 never dropped."""
    from gflowout.methods.mc import bernoulli_masks

    torch.manual_seed(0)
    rows, width = 2000, 2000
    mask = bernoulli_masks(rows, width, keep, torch.empty(1, dtype=torch.bfloat16))
    assert mask.dtype == torch.bfloat16 and set(mask.unique().tolist()) <= {0.0, 1.0}
    standard_error = (keep * (1 - keep) / (rows * width)) ** 0.5
    assert abs(float(mask.float().mean()) - keep) < 5 * standard_error


def test_concrete_relaxed_mask_with_a_bf16_drop_logit_keeps_at_the_float32_rate() -> None:
    """bf16-true training makes drop_logit bf16; the noise and relaxation still run in float32.

    p = 0.01 is kept at ~0.9918.
    """
    from gflowout.methods.concrete import relaxed_keep_mask

    drop_logit = torch.tensor(0.01).logit()
    torch.manual_seed(0)
    reference = relaxed_keep_mask(drop_logit, (1000, 1000), 0.1).mean()
    torch.manual_seed(1)
    low = relaxed_keep_mask(drop_logit.bfloat16(), (1000, 1000), 0.1)
    assert low.dtype == torch.bfloat16
    assert abs(float(low.float().mean()) - float(reference)) < 4e-4  # ~4 standard errors of the two means
