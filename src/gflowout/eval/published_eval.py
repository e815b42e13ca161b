"""Evaluation on the PUBLISHED CIFAR-10-C / CIFAR-100-C files (Hendrycks & Dietterich 2019) that are under the data
root, normalised with the in-distribution TRAINING statistics; missing files are skipped with one line naming
the fetch command. Their numbers go to the result's own section "published_corruptions"."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from gflowout.eval import test_sets
from gflowout.eval.conditions import ConditionRecorder
from gflowout.eval.published import PUBLISHED_LABELS, fetch_hint, published_files_missing
from gflowout.eval.test_sets import subset_indices

Progress = Callable[[str], None]


def evaluate_published(
    recorder: ConditionRecorder,
    set_name: str,
    plan: Mapping[str, Sequence[int]],
    run: Callable[[np.ndarray], Tensor],
    root: Any,
    limit: int | None,
    note: Progress,
    log: Progress,
) -> None:
    """Fill results["published_corruptions"] (and the "ts" block's, when a temperature was fitted) from the
    published -C files that are present; log what is not."""
    datasets, _ = test_sets._data()
    results = recorder.results
    missing = {c: published_files_missing(set_name, c, root) for c in plan}
    absent = [c for c, paths in missing.items() if paths]
    if absent:
        where = missing[absent[0]][0].parent
        what = "not found" if len(absent) == len(plan) else f"{len(absent)} of {len(plan)} corruption(s) missing"
        message = (
            f"published {PUBLISHED_LABELS.get(set_name, set_name)} {what} under {where}: skipped "
            f"{', '.join(absent)}; to evaluate on it, run {fetch_hint(set_name)}"
        )
        results["published_skipped"] = {set_name: message}
        log(message)
    present = [c for c in plan if c not in absent]
    if not present:
        return
    results["published_set"] = set_name
    recorder.open("published_corruptions")
    label = PUBLISHED_LABELS.get(set_name, set_name)
    for corruption in present:
        recorder.open("published_corruptions", corruption)
        for severity in plan[corruption]:
            note(f"published {label} {corruption} severity {severity}")
            images, labels = datasets.load_corruption(set_name, corruption, severity, root)
            keep = subset_indices(len(labels), limit)  # the rows of the clean subset: -C rows follow the test set
            if keep is not None:
                images, labels = images[keep], labels[keep]
            logits = run(np.asarray(images, dtype=np.float32) / 255.0)
            recorder.metrics(
                ("published_corruptions", corruption, str(severity)), logits, np.asarray(labels, dtype=np.int64)
            )
