"""OOD detection inside an evaluation: each OOD set's S-sample predictive against the clean test set's.

`evaluate_ood_sets` writes the result's "ood", "ood_skipped" and OOD figure material (`gflowout.eval.evaluate`'s
RESULT SCHEMA), and the tempered twin's "ood" when a temperature was fitted. The OOD images are normalised with the
in-distribution set's training statistics, like every test condition (the official code did not).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from gflowout.errors import DataError
from gflowout.eval.conditions import ConditionRecorder
from gflowout.eval.figure_material import ood_material
from gflowout.eval.ood import SCORE_NAMES, ood_metrics, ood_scores
from gflowout.eval.test_sets import DEFAULT_OOD, load_test_images

__all__ = ["evaluate_ood_sets"]


def evaluate_ood_sets(
    recorder: ConditionRecorder,
    clean_logits: Tensor,
    images: np.ndarray,
    data_name: str,
    ood_sets: Sequence[str] | None,
    *,
    root: Any,
    limit: int | None,
    run: Callable[[np.ndarray], Tensor],
    note: Callable[[str], None],
    classes: int,
) -> None:
    """Score every OOD set against the clean predictive (`clean_logits` of `images`) with each of SCORE_NAMES.

    ood_sets: the sets to evaluate; None for `DEFAULT_OOD[data_name]`, where a set missing on this machine is
        listed under "ood_skipped" instead. A named set that is missing raises DataError, as does a set whose
        images have another shape than the test images.
    run: predicts [S, N, C] logits of [0, 1] images (normalised inside with `data_name`'s statistics).
    """
    results, ts = recorder.results, recorder.ts
    explicit = ood_sets is not None
    scores_in = ood_scores(clean_logits)
    scores_in_ts = ood_scores(recorder.scaled(clean_logits)) if ts is not None else None
    for ood_name in ood_sets if ood_sets is not None else DEFAULT_OOD.get(data_name, ()):
        try:
            ood_images, _ = load_test_images(ood_name, root, limit)
        except DataError as error:
            if explicit:
                raise
            results["ood_skipped"][ood_name] = str(error)
            continue
        if ood_images.shape[1:] != images.shape[1:]:
            raise DataError(
                f"OOD set {ood_name!r} has images {ood_images.shape[1:]}, "
                f"but {data_name!r} has {images.shape[1:]}: an OOD pair needs one image shape"
            )
        note(f"OOD {ood_name}")
        ood_logits = run(ood_images)
        scores_out = ood_scores(ood_logits)
        if ts is not None and scores_in_ts is not None:
            scores_out_ts = ood_scores(recorder.scaled(ood_logits))
            ts["ood"][ood_name] = {
                score: ood_metrics(scores_in_ts[score], scores_out_ts[score]) for score in SCORE_NAMES
            }
        del ood_logits
        results["ood"][ood_name] = {}
        results["figures"]["ood_histograms"][ood_name] = {}
        results["figures"]["roc"][ood_name] = {}
        for score in SCORE_NAMES:
            results["ood"][ood_name][score] = ood_metrics(scores_in[score], scores_out[score])
            hist, roc = ood_material(scores_in[score].cpu(), scores_out[score].cpu(), score, classes)
            results["figures"]["ood_histograms"][ood_name][score] = hist
            results["figures"]["roc"][ood_name][score] = roc
