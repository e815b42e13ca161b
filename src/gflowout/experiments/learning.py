"""What each run learned and what it cost, collected from its run folder into one JSON for the report.

A benchmark's run folders (RESULTS/runs/<run id>/) hold what the result JSONs do not: the training logs by
epoch (CSV), the TensorBoard events with their wall-clock times, and the best and last checkpoints. They are
large and stay on the machine that trained; this module distils them into `learning.json` (a few hundred KB),
which the report reads and which can be published beside the results:

* curves: per epoch, the GFlowNet quantities the harness logs (keep rate of the training masks, mean log q of
  a mask, mean log reward, log Z, beta), the validation NLL, and the mask diagnostics when the run logged them;
* checkpoints: the mask diagnostics (`DropoutMethod.mask_diagnostics`) of the best and the last checkpoint on
  the first 256 training images, as the harness computes them each epoch: keep probabilities and Bernoulli
  entropies of q(z | x, y) and of the prior p(z | x), per site and averaged over sites (log 2 = 0.693 is
  keep-0.5, i.e. MC dropout's masks; 0 is a deterministic mask);
* timing: wall time per epoch from the event files (`gflowout.eval.run_timing`);
* units: the number of maskable units, so log q can be read against U log 2 (uniform keep-0.5 masks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gflowout.eval.run_timing import epoch_timing
from gflowout.results import read_learning, write_json_atomic

__all__ = [
    "CURVE_KEYS",
    "checkpoint_masks",
    "collect_learning",
    "read_curves",
    "read_learning",
    "run_learning",
    "learning_for_report",
    "site_means",
]

# epoch-level columns of the harness's CSV logs kept as curves (those a run has)
CURVE_KEYS = (
    "train/keep_rate_epoch",
    "train/log_forward_epoch",
    "train/log_reward_epoch",
    "train/log_z_epoch",
    "train/beta_epoch",
    "val/nll",
    "val/accuracy",
)
DIAGNOSTIC_BATCH = 256


def read_curves(run_folder: str | Path) -> dict[str, dict[int, float]]:
    """{column: {epoch: value}} of the run's CSV logs for CURVE_KEYS and every masks/ column (later logs win)."""
    from gflowout.eval.mask_report import read_epoch_columns

    return read_epoch_columns(run_folder, lambda key: key in CURVE_KEYS or key.startswith("masks/"))


def checkpoint_masks(checkpoint: str | Path, seed: int = 0) -> dict[str, Any]:
    """Mask diagnostics of one checkpoint on the first DIAGNOSTIC_BATCH training images, with its epoch and units."""
    from torch.utils.data import default_collate

    from gflowout.checkpoint import load_method, read_checkpoint
    from gflowout.rng import private_rng
    from gflowout.training.build import build_datamodule

    method, config = load_method(checkpoint)
    epoch = read_checkpoint(checkpoint).get("epoch")
    datamodule = build_datamodule(config.data)
    datamodule.setup("fit")
    dataset = datamodule.train_dataloader().dataset
    x, y = default_collate([dataset[i] for i in range(min(DIAGNOSTIC_BATCH, len(dataset)))])[:2]
    dtype = next(method.net.parameters()).dtype
    with private_rng(torch.device("cpu")), torch.no_grad():  # load_method returns it in eval mode
        torch.manual_seed(seed)
        values = method.mask_diagnostics(x.to(dtype), y.long())
    return {
        "epoch": None if epoch is None else int(epoch),
        "units": sum(site.width for site in method.net.sites),
        "diagnostics": values,
        "site_means": site_means(values),
    }


def site_means(values: dict[str, float]) -> dict[str, float]:
    """Each per-site statistic ("masks/<site>/<stat>") averaged over the sites: {stat: mean}."""
    sums: dict[str, list[float]] = {}
    for key, value in values.items():
        parts = key.split("/")
        if len(parts) >= 3:
            sums.setdefault(parts[-1], []).append(value)
    return {statistic: sum(items) / len(items) for statistic, items in sums.items()}


def run_learning(run_folder: str | Path) -> dict[str, Any]:
    """Curves, timing and (for methods with learned masks) checkpoint diagnostics of one run folder."""
    run_folder = Path(run_folder)
    timing = epoch_timing(run_folder)
    record: dict[str, Any] = {
        "curves": {
            key: {str(e): v for e, v in sorted(series.items())} for key, series in read_curves(run_folder).items()
        },
        "timing": None if timing is None else timing.to_dict(),
        "checkpoints": {},
    }
    for which in ("best", "last"):
        path = run_folder / "checkpoints" / f"{which}.ckpt"
        if path.is_file():
            masks = checkpoint_masks(path)
            if masks["diagnostics"]:
                record["checkpoints"][which] = masks
    return record


def collect_learning(
    runs_dir: str | Path,
    out_path: str | Path,
    log: Any = print,
    only: set[str] | None = None,
    keep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`run_learning` of every run folder under `runs_dir` (by run id; with `only`, of those run ids alone),
    written atomically to `out_path`. `keep`: records already distilled (an earlier learning.json) of runs whose
    folders are gone, written beside the fresh ones, so that a partly purged runs folder loses no run's record."""
    runs_dir = Path(runs_dir)
    folders = sorted(
        p for p in runs_dir.iterdir() if p.is_dir() and (p / "logs").is_dir() and (only is None or p.name in only)
    )
    if not folders:
        raise FileNotFoundError(
            f"no run folders (with logs/) under {str(runs_dir)!r}: pass the folder that holds "
            "the benchmark's runs/<run id>/ folders"
        )
    learning = {}
    for folder in folders:
        log(f"learning: {folder.name}")
        learning[folder.name] = run_learning(folder)
    kept = keep or {}
    for run_id in sorted(set(kept) - set(learning)):
        log(f"learning: {run_id} (its run folder is gone: its record in the earlier learning.json is kept)")
        learning[run_id] = kept[run_id]
    learning = dict(sorted(learning.items()))
    write_json_atomic(out_path, {"schema_version": 1, "runs": learning})
    return learning


def learning_for_report(results: Path, out: Path, runs: str | Path | None = None) -> dict[str, Any] | None:
    """The runs of OUT/learning.json for a report of RESULTS: written from the run folders (`runs`, else
    RESULTS/runs) of the finished runs (those with a result file) when there are any, keeping the earlier
    learning.json's records of finished runs whose folders are gone; else read back."""
    from gflowout.errors import ConfigError

    folder = Path(runs) if runs else results / "runs"
    if runs and not folder.is_dir():
        raise ConfigError(
            f"--runs {str(runs)!r} is not a folder; pass the benchmark's runs/ folder or leave --runs out"
        )
    finished = (
        {path.stem for path in results.rglob("*.json")} | {path.parent.name for path in folder.glob("*/results.json")}
        if folder.is_dir()
        else set()
    )
    path = out / "learning.json"
    if any((p / "logs").is_dir() and p.name in finished for p in (folder.iterdir() if folder.is_dir() else ())):
        kept = {run_id: record for run_id, record in _earlier_learning(path).items() if run_id in finished}
        return collect_learning(folder, path, only=finished, keep=kept)
    if path.is_file():
        return read_learning(path)
    return None


def _earlier_learning(path: Path) -> dict[str, Any]:
    """The runs of an existing learning.json, to keep those whose run folders are gone; none when there is no
    file, and none, said aloud, when it cannot be read (it is written again from the run folders)."""
    if not path.is_file():
        return {}
    try:
        return read_learning(path)
    except (ValueError, OSError) as error:
        print(f"learning: the earlier {path.name} is not kept ({error})")
        return {}
