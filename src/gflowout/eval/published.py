"""The published CIFAR-10-C / CIFAR-100-C files (Hendrycks & Dietterich 2019) as `evaluate_method` uses them:
their corruption names, which files are missing under the data root, a checked {corruption: severities}
plan from a request, and the command that fetches them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gflowout.errors import ConfigError

PUBLISHED_LABELS: dict[str, str] = {"cifar10-c": "CIFAR-10-C", "cifar100-c": "CIFAR-100-C"}


def published_corruption_names(set_name: str) -> list[str]:
    """Corruptions of a published -C set ("cifar10-c" / "cifar100-c"), from the data table."""
    from gflowout.data.sources import get_spec

    return [Path(f.path).stem for f in get_spec(set_name).files if not f.path.endswith("labels.npy")]


def published_files_missing(set_name: str, corruption: str, root: Any = None) -> list[Path]:
    """The files of one published corruption (its .npy and labels.npy) that are not under the data root."""
    from gflowout.data.sources import get_spec

    spec = get_spec(set_name)
    folder = spec.folder(root) / spec.extra["subfolder"]
    return [path for path in (folder / f"{corruption}.npy", folder / "labels.npy") if not path.is_file()]


def plan_published_corruptions(
    request: Sequence[str] | Mapping[str, Sequence[int]] | str | None, set_name: str, severities: Sequence[int]
) -> dict[str, tuple[int, ...]]:
    """{corruption: severities} of a request: "all", a list (each at `severities`) or a mapping; checked."""
    if not request:
        return {}
    known = published_corruption_names(set_name)
    if isinstance(request, str):
        if request != "all":
            raise ConfigError(
                f"published_corruptions: expected 'all', a list of corruptions or a mapping "
                f"{{corruption: severities}}, found {request!r}"
            )
        request = known
    plan = (
        {str(k): tuple(int(v) for v in levels) for k, levels in request.items()}
        if isinstance(request, Mapping)
        else {str(name): tuple(int(v) for v in severities) for name in request}
    )
    unknown = sorted(set(plan) - set(known))
    bad_levels = sorted({v for levels in plan.values() for v in levels} - set(range(1, 6)))
    if unknown or bad_levels:
        raise ConfigError(
            f"published_corruptions: {set_name} has corruptions {', '.join(known)} at severities "
            f"1-5; found unknown corruption(s) {unknown} / severities {bad_levels}"
        )
    return plan


def fetch_hint(set_name: str) -> str:
    """The command that fetches a published -C set from a downloaded archive."""
    from gflowout.data.sources import get_spec

    spec = get_spec(set_name)
    archive = f" (FILE: the published {spec.archive[0]})" if spec.archive else ""
    return f"`{spec.fetch_command} --from FILE`{archive}"
