"""gflowout.eval.streaming: sums added batch by batch (and over ranks) give gflowout.eval.metrics on the whole set."""

from __future__ import annotations

import math

import pytest
import torch

from gflowout.eval.metrics import classification_metrics
from gflowout.eval.predictive import log_mean_probs, mean_probs
from gflowout.eval.streaming import ClassificationSums, stream_predictions


def _data(samples: int, examples: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(samples, examples, classes, generator=generator)
    return logits, torch.randint(0, classes, (examples,), generator=generator)


@pytest.mark.parametrize(("samples", "bins"), [(5, 15), (1, 15), (3, 10)])
def test_streamed_and_reduced_sums_equal_whole_set_metrics(samples: int, bins: int) -> None:
    """Batches split over two 'ranks' and summed give gflowout.eval.metrics on the concatenated set."""
    logits, labels = _data(samples, 203, 7)
    ranks = [ClassificationSums(bins), ClassificationSums(bins)]
    for start in range(0, 203, 16):
        rank = (start // 16) % 2
        ranks[rank].update(logits[:, start : start + 16], labels[start : start + 16])
    reduced = ranks[0].sums + ranks[1].sums  # what the all-reduce(sum) computes
    streamed = ClassificationSums(bins).compute(reduced)
    reference = classification_metrics(mean_probs(logits), labels, bins=bins, log_probs=log_mean_probs(logits))
    assert streamed["count"] == 203
    for name in ("accuracy", "nll", "brier", "ece"):
        assert streamed[name] == pytest.approx(reference[name], rel=1e-9, abs=1e-12), name


def test_no_batches_give_nan_metrics_and_a_zero_count() -> None:
    values = ClassificationSums().compute()
    assert values["count"] == 0.0 and all(math.isnan(values[k]) for k in ("accuracy", "nll", "brier", "ece"))


class _FixedLogits(torch.nn.Module):
    """A stand-in method whose predict returns stored logits for the rows it is given (their first pixel)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def predict(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        return self.logits[:samples, x[:, 0].long()]


def test_stream_predictions_sums_every_batch_and_keeps_the_logits() -> None:
    logits, labels = _data(4, 50, 3)
    rows = torch.arange(50, dtype=torch.float32)[:, None]
    batches = [(rows[i : i + 8], labels[i : i + 8]) for i in range(0, 50, 8)]
    sums, kept, kept_labels = stream_predictions(_FixedLogits(logits), batches, samples=4, keep_logits=True)  # type: ignore[arg-type]
    whole = ClassificationSums()
    whole.update(logits, labels)
    assert sums.compute() == pytest.approx(whole.compute(), rel=1e-12)
    assert kept is not None and kept_labels is not None
    assert torch.equal(kept, logits) and torch.equal(kept_labels, labels)
    _, none, no_labels = stream_predictions(_FixedLogits(logits), batches, samples=2)  # type: ignore[arg-type]
    assert none is None and no_labels is None
