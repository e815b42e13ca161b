"""`gflowout masks`: mask analysis of trained runs (the paper's mask-diversity figures).

For each run folder (config.yaml + checkpoints/best.ckpt, loaded with the safe checkpoint loader) and each
condition (clean test images, the paper's random rotation, a corruption), the method predicts with S mask
samples while `MaskRecorder` records the masks at every site (the labels are never shown to the method;
they only group inputs by class afterwards). Per site: intra- and inter-sample diversity, the keep rate,
the share of undetermined units; per site and class, the mean mask (a heat map). Writes masks.json,
masks.md (a report section) and PNG figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gflowout.errors import ConfigError
from gflowout.eval import masks as mask_stats

DEFAULT_CORRUPTION = {"mnist": ("shot_noise", 3), "cifar": ("gaussian_noise", 3)}


def parse_condition(text: str) -> tuple[str, int]:
    """ "clean", "random_rotation" or "SHIFT:SEVERITY" (e.g. "fog:3") -> (name, severity)."""
    name, _, severity = text.partition(":")
    try:
        return name, int(severity or 1)
    except ValueError:
        raise ConfigError(f"condition {text!r}: expected NAME or NAME:SEVERITY with an integer severity") from None


def default_conditions(images: np.ndarray) -> list[tuple[str, int]]:
    """Clean, the paper's random rotation, and one corruption at severity 3 for the image kind."""
    from gflowout.data.shifts import infer_kind

    return [("clean", 1), ("random_rotation", 1), DEFAULT_CORRUPTION[infer_kind(images)]]


@torch.no_grad()
def analyse_condition(
    method: Any, images: torch.Tensor, labels: np.ndarray, samples: int, batch_size: int = 100
) -> dict[str, Any]:
    """Per-site diversity, keep rate, undetermined share and class-mean masks of one condition, plus accuracy."""
    net = method.net
    intra_mean: dict[int, list[torch.Tensor]] = {s.index: [] for s in net.sites}
    intra_max: dict[int, list[torch.Tensor]] = {s.index: [] for s in net.sites}
    input_means: dict[int, list[torch.Tensor]] = {s.index: [] for s in net.sites}
    shuffled_means: dict[int, list[torch.Tensor]] = {s.index: [] for s in net.sites}
    shuffler = torch.Generator().manual_seed(0)  # its own stream: the masks' random stream is left alone
    undetermined = {s.index: 0 for s in net.sites}
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        with mask_stats.recording(net) as recorder:
            logits = method.predict(x, samples=samples)
        correct += int((logits.softmax(-1).mean(0).argmax(-1).numpy() == labels[start : start + x.shape[0]]).sum())
        for site in net.sites:
            (recorded,) = recorder.masks[site.index]
            stacked = mask_stats.sample_major(recorded, samples, x.shape[0])
            undetermined[site.index] += int(stacked.isnan().sum())
            if samples > 1:
                mean, largest = mask_stats.intra_sample_distances(stacked)
                intra_mean[site.index].append(mean)
                intra_max[site.index].append(largest)
            input_means[site.index].append(mask_stats.mean_masks(stacked))
            shuffled_means[site.index].append(mask_stats.shuffled_mean_masks(stacked, shuffler))
    label_tensor = torch.as_tensor(labels)
    per_site = {}
    for site in net.sites:
        means = torch.cat(input_means[site.index])
        inter = mask_stats.inter_sample_diversity(means)
        floor = mask_stats.inter_sample_diversity(torch.cat(shuffled_means[site.index]))
        per_site[site.name] = {
            "width": site.width,
            "intra_mean": float(torch.cat(intra_mean[site.index]).mean()) if samples > 1 else 0.0,
            "intra_max": float(torch.cat(intra_max[site.index]).mean()) if samples > 1 else 0.0,
            "inter_mean": inter.mean,
            "inter_max": inter.max,
            "inter_floor": floor.mean,
            "keep_rate": float(means.nanmean()),
            "undetermined": undetermined[site.index] / float(samples * means.numel()),
            "class_means": mask_stats.class_mean_masks(means, label_tensor, net.num_classes).tolist(),
        }
    return {"accuracy": correct / images.shape[0], "count": int(images.shape[0]), "sites": per_site}


def analyse_run(
    run: str | Path,
    samples: int = 20,
    limit: int | None = 500,
    conditions: Sequence[str] | None = None,
    root: str | None = None,
    batch_size: int = 100,
    allow_custom_code: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Mask analysis of one trained run (see the module docstring); returns its JSON-ready result."""
    from gflowout.checkpoint import load_method
    from gflowout.eval.evaluate import load_test_images, normalise, shifted_test_images

    method, config = load_method(run, allow_custom_code=allow_custom_code)
    name = config.data.name
    root = root if root is not None else config.data.root
    clean, labels = load_test_images(name, root, limit)
    plan = [parse_condition(c) for c in conditions] if conditions else default_conditions(clean)
    result: dict[str, Any] = {
        "run": str(run),
        "method": config.method.name,
        "dataset": name,
        "seed": config.seed,
        "samples": samples,
        "conditions": {},
    }
    for shift, severity in plan:
        started = time.perf_counter()
        if shift == "clean":
            images = clean
        else:
            images = shifted_test_images(name, shift, severity, seed=config.seed, root=root, limit=limit, clean=clean)
        key = shift if shift in ("clean", "random_rotation") else f"{shift}:{severity}"
        torch.manual_seed(config.seed)
        result["conditions"][key] = analyse_condition(method, normalise(images, name), labels, samples, batch_size)
        log(f"{config.method.name} seed {config.seed} {key}: {time.perf_counter() - started:.1f} s")
    return result


# ---- outputs --------------------------------------------------------------------------------------
def table_markdown(results: Sequence[dict[str, Any]]) -> str:
    """The report section: one row per run, condition and site."""
    lines = [
        "## Mask analysis",
        "",
        "Distances between masks are mean |a - b| over a site's units (Hamming distance / width for 0/1 masks). "
        "Intra: between the S mask samples of one input (mean over pairs; max over pairs), averaged over inputs. "
        "Inter: between inputs' mean masks, over pairs of inputs. Keep rate: mean mask. Masks are recorded at "
        "prediction, without labels; a method without sampled masks (none) has zero diversity by construction. "
        "Inter-sample diversity is measured on S-sample mean masks, so sampling noise alone gives input-independent "
        "masks some: 'inter floor' is the same measure after mixing the samples of different inputs (same mask "
        "distribution, no input dependence); inter (mean) above its floor is input dependence.",
        "",
        "| method | seed | condition | accuracy | site | intra (mean) | intra (max) | inter (mean) | inter floor "
        "| inter (max) | keep rate | undetermined |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for condition, entry in result["conditions"].items():
            for site, stats in entry["sites"].items():
                lines.append(
                    f"| {result['method']} | {result['seed']} | {condition} | {entry['accuracy']:.4f} | {site} | "
                    f"{stats['intra_mean']:.4f} | {stats['intra_max']:.4f} | {stats['inter_mean']:.4f} | "
                    f"{stats['inter_floor']:.4f} | {stats['inter_max']:.4f} | {stats['keep_rate']:.4f} | "
                    f"{stats['undetermined']:.2e} |"
                )
    return "\n".join(lines) + "\n"


def _site_values(
    result: dict[str, Any], site: str, key: str, conditions: Sequence[str], missing_ok: bool = False
) -> list[float]:
    """`key` of `site` in each condition of one run's mask analysis (NaN for a condition it lacks; with
    `missing_ok` also for a key an older analysis did not record)."""
    values = []
    for condition in conditions:
        if condition not in result["conditions"]:
            values.append(np.nan)
            continue
        stats = result["conditions"][condition]["sites"][site]
        values.append(stats.get(key, np.nan) if missing_ok else stats[key])
    return values


def plot_diversity(results: Sequence[dict[str, Any]], path: Path) -> Path:
    """Intra- and inter-sample diversity (mean) per method and condition, one panel per site and measure; on the
    inter-sample bars a black tick marks the floor that input-independent masks reach by sampling noise alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sites = list(next(iter(results[0]["conditions"].values()))["sites"])
    conditions = list(results[0]["conditions"])
    figure, axes = plt.subplots(2, len(sites), figsize=(3.6 * len(sites), 6.4), squeeze=False)
    width = 0.8 / max(len(results), 1)
    for row, measure in enumerate(("intra_mean", "inter_mean")):
        for column, site in enumerate(sites):
            axis = axes[row][column]
            for k, result in enumerate(results):
                positions = np.arange(len(conditions)) + k * width
                bars = _site_values(result, site, measure, conditions)
                axis.bar(positions, bars, width, label=f"{result['method']} s{result['seed']}")
                if measure == "inter_mean":
                    floor = _site_values(result, site, "inter_floor", conditions, missing_ok=True)
                    floor_label = "inter floor (no input dependence)" if k == 0 and column == 0 else None
                    axis.scatter(positions, floor, marker="_", color="black", s=60, label=floor_label)
            axis.set_xticks(np.arange(len(conditions)) + 0.4 - width / 2, conditions, rotation=30, fontsize=7)
            axis.set_title(f"{measure.split('_')[0]}-sample, {site}", fontsize=9)
    handles = {label: handle for axis in axes.flat for handle, label in zip(*axis.get_legend_handles_labels())}
    figure.legend(list(handles.values()), list(handles), fontsize=7, loc="lower center", ncol=min(len(handles), 6))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_class_means(result: dict[str, Any], condition: str, path: Path) -> Path:
    """Heat map of the mean mask per class (rows) and unit (columns, ordered by overall keep rate), per site."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sites = result["conditions"][condition]["sites"]
    figure, axes = plt.subplots(len(sites), 1, figsize=(8.0, 1.6 + 1.4 * len(sites)), squeeze=False)
    for axis, (site, stats) in zip(axes[:, 0], sites.items()):
        means = np.asarray(stats["class_means"], dtype=float)
        order = np.argsort(-np.nanmean(means, axis=0))
        image = axis.imshow(means[:, order], aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
        axis.set_ylabel("class")
        axis.set_yticks(range(means.shape[0]))
        axis.tick_params(axis="y", labelsize=6)
        axis.set_title(f"{site}: mean mask per class (units sorted by keep rate)", fontsize=9)
        figure.colorbar(image, ax=axis)
    axes[-1, 0].set_xlabel("unit")
    figure.suptitle(f"{result['method']} (seed {result['seed']}), {condition}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def split_class_means(results: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """(results without the per-class mean masks, {"<method>_seed<seed>/<condition>/<site>": [classes, width]}).

    Why: the class means are [classes, width] per run, condition and site (megabytes of JSON for 1024-wide
    sites); they go to a compressed .npz next to the JSON, which keeps the scalars."""
    arrays: dict[str, np.ndarray] = {}
    slim = []
    for result in results:
        copy = {**result, "conditions": {}}
        for condition, entry in result["conditions"].items():
            sites = {}
            for site, stats in entry["sites"].items():
                arrays[f"{result['method']}_seed{result['seed']}/{condition}/{site}"] = np.asarray(
                    stats["class_means"], dtype=np.float32
                )
                sites[site] = {k: v for k, v in stats.items() if k != "class_means"}
            copy["conditions"][condition] = {**entry, "sites": sites}
        slim.append(copy)
    return slim, arrays


def write_outputs(results: Sequence[dict[str, Any]], out: str | Path) -> Path:
    """masks.json (scalars), class_means.npz, masks.md (with the figures linked) and figures/ under `out`;
    returns the Markdown path."""
    from gflowout.results import write_json_atomic

    out = Path(out)
    slim, arrays = split_class_means(results)
    write_json_atomic(out / "masks.json", {"runs": slim})
    np.savez_compressed(out / "class_means.npz", **arrays)  # type: ignore[arg-type]  # numpy stub precision
    text = table_markdown(results)
    figure = plot_diversity(results, out / "figures" / "mask_diversity.png")
    text += f"\n![mask diversity]({figure.relative_to(out)})\n"
    for result in results:
        condition = "clean" if "clean" in result["conditions"] else next(iter(result["conditions"]))
        heat = plot_class_means(
            result, condition, out / "figures" / f"class_means_{result['method']}_seed{result['seed']}.png"
        )
        text += f"\n![{result['method']} class means]({heat.relative_to(out)})\n"
    (out / "masks.md").write_text(text)
    return out / "masks.md"
