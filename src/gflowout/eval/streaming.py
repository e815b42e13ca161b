"""Streaming classification metrics: accuracy, NLL, Brier and ECE from sums that are added batch by batch.

The training harness validates and tests with these (each DDP rank sums its shard; the sums are all-reduced, so
the metrics are exact over the whole split), and `gflowout evaluate CKPT` and the post-hoc comparison stream a
test split through them without holding every probability. The conventions are those of gflowout.eval.metrics:
the predictive p(y|x) = mean_s softmax(logits_s), NLL = mean -log p(y|x) from a logsumexp (no clamp), ECE over
equal-width right-closed bins; `ClassificationSums.compute` equals `metrics.classification_metrics` on the
concatenated batches (tests/eval/test_streaming.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from gflowout.methods.base import DropoutMethod

ECE_BINS = 15


class ClassificationSums:
    """Sufficient statistics of accuracy, NLL, Brier and ECE, summed over batches (and ranks)."""

    def __init__(self, bins: int = ECE_BINS) -> None:
        self.bins = bins
        self.reset()

    def reset(self) -> None:
        # [count, correct, nll_sum, brier_sum, bin_count x bins, bin_conf x bins, bin_correct x bins]
        self.sums = torch.zeros(4 + 3 * self.bins, dtype=torch.float64)

    def update(self, logits: Tensor, labels: Tensor) -> None:
        """Add a batch: per-sample logits [S, B, C], labels [B]."""
        samples = logits.shape[0]
        log_probs = torch.logsumexp(torch.log_softmax(logits.double(), dim=-1), dim=0) - math.log(samples)
        probs = log_probs.exp()
        labels = labels.long()
        confidence, prediction = probs.max(dim=1)
        correct = (prediction == labels).double()
        onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).double()
        edges = torch.linspace(0.0, 1.0, self.bins + 1, dtype=torch.float64, device=probs.device)
        index = torch.bucketize(confidence, edges[1:-1], right=False)
        batch = torch.zeros_like(self.sums, device=probs.device)
        batch[0] = labels.numel()
        batch[1] = correct.sum()
        batch[2] = -log_probs.gather(1, labels[:, None]).sum()
        batch[3] = ((probs - onehot) ** 2).sum()
        b = self.bins
        batch[4 : 4 + b].index_add_(0, index, torch.ones_like(confidence))
        batch[4 + b : 4 + 2 * b].index_add_(0, index, confidence)
        batch[4 + 2 * b :].index_add_(0, index, correct)
        self.sums = self.sums.to(probs.device) + batch

    def compute(self, sums: Tensor | None = None) -> dict[str, float]:
        """{"accuracy", "nll", "brier", "ece", "count"} from (possibly all-reduced) sums."""
        s = (self.sums if sums is None else sums).double().cpu()
        count = float(s[0])
        if count == 0:
            return {
                "accuracy": float("nan"),
                "nll": float("nan"),
                "brier": float("nan"),
                "ece": float("nan"),
                "count": 0.0,
            }
        b = self.bins
        bin_conf, bin_correct = s[4 + b : 4 + 2 * b], s[4 + 2 * b :]  # s[4 : 4 + b] holds the bin counts
        ece = float((bin_conf - bin_correct).abs().sum() / count)  # sum_b n_b/N |acc_b - conf_b|
        return {
            "accuracy": float(s[1]) / count,
            "nll": float(s[2]) / count,
            "brier": float(s[3]) / count,
            "ece": ece,
            "count": count,
        }


def stream_predictions(
    method: DropoutMethod,
    batches: Iterable[tuple[Tensor, Tensor]],
    samples: int,
    device: torch.device | str = "cpu",
    keep_logits: bool = False,
) -> tuple[ClassificationSums, Tensor | None, Tensor | None]:
    """Predict every (images, labels) batch with `samples` masks and add it to fresh ClassificationSums.

    Args:
        method: the trained method (in eval mode); its masks come from the caller's RNG stream.
        batches: (images [B, C, H, W], labels [B]) pairs, e.g. a data module's test loader.
        samples: masks per image (S).
        device: where the images are predicted.
        keep_logits: also return the per-sample logits [S, N, C] (float32, CPU) and the labels [N] (int64).

    Returns:
        (sums, logits or None, labels or None).
    """
    sums = ClassificationSums()
    all_logits: list[Tensor] = []
    all_labels: list[Tensor] = []
    for x, y in batches:
        logits = method.predict(x.to(device), samples=samples)
        sums.update(logits, y.to(device))
        if keep_logits:
            all_logits.append(logits.float().cpu())
            all_labels.append(y.cpu())
    if not keep_logits:
        return sums, None, None
    return sums, torch.cat(all_logits, dim=1), torch.cat(all_labels).long()
