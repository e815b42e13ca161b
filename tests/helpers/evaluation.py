"""Stand-ins shared by the runner tests in tests/eval/."""

from __future__ import annotations

import torch

from gflowout.methods.none import NoDropout
from gflowout.nets.mlp import MLP


class RecordingMethod(NoDropout):
    """A stand-in method that records every batch given to predict; a subclass says which logits to answer."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__(MLP(hidden=(4,)))
        self.batches: list[torch.Tensor] = []

    @torch.no_grad()
    def predict(self, x: torch.Tensor, samples: int = 20) -> torch.Tensor:
        self.batches.append(x.clone())
        return self.answer(x, samples)

    def answer(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        """Logits [samples, batch, 10] for the recorded batch x [batch, C, H, W]."""
        raise NotImplementedError(f"{type(self).__name__} must define answer(x, samples)")
