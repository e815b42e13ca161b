"""Complete result files written by an older gflowout: re-evaluate a finished run whose result lacks sections
that this version's evaluation adds (temperature scaling "ts", conformal sets "conformal", selective prediction
"selective"), from its trained checkpoint, without retraining.

The new evaluation must reproduce the old one: every number the old file holds (apart from timings, figure
paths and the echo of the config) has to come out identical, or nothing is replaced and the new result is
left beside the run (`runs/<run id>/reevaluated.json`) for inspection. So a completed file is the old result
plus new sections, never a silently different one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gflowout.errors import GFlowOutError
from gflowout.results import write_json_atomic

# The file a finished training leaves in its run folder (written by the benchmark runner, read here).
TRAINED_MARKER = "trained.json"

IGNORED_KEYS = frozenset({"eval_time_s", "train_time_s", "figures", "config"})  # may differ between evaluations
REJECTED_NAME = "reevaluated.json"


class ReevaluationError(GFlowOutError):
    """A re-evaluation did not reproduce the numbers of the result file it was to complete."""


def missing_sections(result: Mapping[str, Any], evaluation: Any) -> list[str]:
    """The sections this version's evaluation (`EvaluationSettings`) writes that `result` lacks."""
    wanted = ["selective"]
    if evaluation.temperature_scaling:
        wanted += ["temperature_scaling", "ts"]
    missing = [key for key in wanted if key not in result]
    if evaluation.conformal_alpha is not None and "conformal" not in result and "conformal_skipped" not in result:
        missing.append("conformal")
    return missing


def differences(old: Any, new: Any, path: str = "", limit: int = 20) -> list[str]:
    """Where `new` does not hold `old`'s value: every key of `old` (recursively, apart from IGNORED_KEYS at any
    depth) must be in `new` with an identical value (NaN equals NaN); keys only `new` has are additions."""
    found: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(a, Mapping):
            if not isinstance(b, Mapping):
                found.append(f"{where or '/'}: a mapping became {type(b).__name__}")
                return
            for key, value in a.items():
                if key in IGNORED_KEYS:
                    continue
                if key not in b:
                    found.append(f"{where}/{key}: missing from the new evaluation")
                else:
                    walk(value, b[key], f"{where}/{key}")
        elif isinstance(a, list):
            if not isinstance(b, list) or len(a) != len(b):
                found.append(f"{where}: a list of {len(a)} became {b!r:.60}")
                return
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{where}[{index}]")
        elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return
        elif a != b:
            found.append(f"{where}: {a!r} before, {b!r} now")

    walk(old, new, path)
    return found


def complete_result(
    result_path: Path,
    old: Mapping[str, Any],
    run_dir: Path,
    evaluate: Callable[[], dict[str, Any]],
    missing: list[str],
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Re-evaluate one finished run with `evaluate` (no training: the run's `trained.json` marker must exist),
    check that it reproduces `old` (the result file's contents, as the caller read them), then replace the file
    (atomically) by the completed result.

    Raises ReevaluationError (the file untouched, the new result in runs/<run id>/reevaluated.json) when a
    number differs, and when the run has no finished training to evaluate.
    """
    if not (run_dir / TRAINED_MARKER).is_file():
        raise ReevaluationError(
            f"{result_path.name}: its run folder {run_dir} holds no finished training (trained.json), so it cannot "
            "be re-evaluated; keep the result as it is, or delete it to redo the run"
        )
    log(f"  re-evaluating to add {', '.join(missing)} (the numbers already in {result_path.name} must not change)")
    new = evaluate()
    found = differences(old, new)
    if found:
        aside = run_dir / REJECTED_NAME
        write_json_atomic(aside, new)
        raise ReevaluationError(
            f"re-evaluating {result_path.name} changed numbers it already holds ({'; '.join(found[:5])}"
            f"{'; ...' if len(found) > 5 else ''}); the file is kept as it was and the new evaluation is in {aside}. "
            "Evaluate with the gflowout version that wrote the file, or delete the file to redo the run"
        )
    new["reevaluated"] = {  # the code that added the sections; the file's own version and commit stay the old ones
        "sections_added": missing,
        "previous_eval_time_s": old.get("eval_time_s"),
        "previous_values_reproduced": True,
        "gflowout_version": new.get("gflowout_version"),
        "commit": new.get("commit"),
    }
    for key in ("train_time_s", "gflowout_version", "commit"):
        new[key] = old.get(key)
    new["train_time_all_sessions"] = bool(old.get("train_time_all_sessions", False))  # the old file's training time
    new["train_peak_rss_mb"] = old.get("train_peak_rss_mb")
    write_json_atomic(result_path, new)
    return new
