"""The settings block of a report: what the runs were made with, one row per setting, "mixed (...)" where they differ.

Each setting is read from a run's result JSON (`SETTINGS`); `settings_rows` describes one setting over all runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


def _get(tree: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _describe(values: Sequence[Any]) -> str:
    """One value as text, or "mixed (a; b; ...)" when the runs differ; "not recorded" when none has it."""

    def text(value: Any) -> str:
        if isinstance(value, Mapping):
            return ", ".join(f"{k}: {text(v)}" for k, v in value.items()) or "none"
        if isinstance(value, (list, tuple)):
            return ", ".join(text(v) for v in value) or "none"
        return str(value)

    distinct: list[str] = []
    for value in values:
        if value is not None and text(value) not in distinct:
            distinct.append(text(value))
    if not distinct:
        return "not recorded"
    if len(distinct) == 1:
        return distinct[0] + (" (not recorded for some runs)" if any(v is None for v in values) else "")
    shown = "; ".join(distinct[:4]) + ("; ..." if len(distinct) > 4 else "")
    return f"mixed ({shown})"


# (label, how to read it from one run); None-valued entries are left out of the block when no run has them.
SETTINGS: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = [
    ("data set", lambda r: r.get("dataset")),
    ("backbone", lambda r: _get(r, "config.model.backbone")),
    ("backbone options", lambda r: _get(r, "config.model.options")),
    ("epochs", lambda r: _get(r, "config.trainer.max_epochs")),
    ("batch size", lambda r: _get(r, "config.data.batch_size")),
    ("training subset", lambda r: _get(r, "config.data.limit_train")),
    ("validation every n epochs", lambda r: _get(r, "config.trainer.val_every_n_epochs")),
    ("validation batches per check", lambda r: _get(r, "config.trainer.limit_val_batches")),
    ("validation samples S", lambda r: _get(r, "config.trainer.val_samples")),
    ("test samples S", lambda r: r.get("samples")),
    ("test-set size", lambda r: r.get("test_size")),
    ("generated shifts", lambda r: sorted(r.get("shifts") or {}) or None),
    ("severities", lambda r: sorted({int(k) for v in (r.get("shifts") or {}).values() for k in v}) or None),
    ("rotation sweep angles", lambda r: _get(r, "evaluation.rotation_angles") or None),
    ("OOD sets", lambda r: sorted(r.get("ood") or {}) or None),
    ("gflowout version", lambda r: r.get("gflowout_version") or _get(r, "config.gflowout_version")),
    ("commit", lambda r: r.get("commit") or r.get("git_commit") or _get(r, "config.commit")),
]


def _method_options(runs: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> str | None:
    """Each method's own options (its `methods.<name>.options` block), e.g. "gflowout (beta: 1.0)".

    Without them two reports of one method (a schedule and its ablation) would show the same settings block.
    Methods with no options are named last, as run with their defaults; None when no method of the runs has any.
    """
    parts, defaults = [], []
    for method in methods:
        values = [_get(r, f"config.methods.{method}.options") for r in runs if str(r.get("method")) == method]
        if any(values):
            parts.append(f"{method} ({_describe([v or None for v in values])})")
        else:
            defaults.append(method)
    if parts and defaults:
        parts.append(f"{', '.join(defaults)}: their defaults")
    return "; ".join(parts) or None


def settings_rows(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(setting, value) pairs the runs were made with; "mixed (...)" where they differ.

    Settings no run records are left out, except the version and commit, which say "not recorded".
    """
    rows = []
    by_method: dict[str, list[int]] = {}
    for run in runs:
        by_method.setdefault(str(run.get("method")), []).append(int(run.get("seed", 0)))
    for label, read in SETTINGS:
        values = [read(run) for run in runs]
        if all(v is None for v in values) and label not in ("gflowout version", "commit"):
            continue
        rows.append((label, _describe(values)))
    seeds = {m: sorted(s) for m, s in by_method.items()}
    distinct = {tuple(s) for s in seeds.values()}
    seeds_text = (
        ", ".join(map(str, next(iter(distinct))))
        if len(distinct) == 1
        else "mixed (" + "; ".join(f"{m}: {', '.join(map(str, s))}" for m, s in seeds.items()) + ")"
    )
    per_method = [("methods", ", ".join(seeds)), ("seeds", seeds_text)]
    options = _method_options(runs, list(seeds))
    if options is not None:
        per_method.append(("method options", options))
    return rows[:1] + per_method + rows[1:]  # after the data set, before the backbone
