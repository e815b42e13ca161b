"""Post-hoc GFlowOut: learn GFlowOut's masks for a network that is already trained, without retraining it.

Liu et al. (ICML 2023) train the backbone and the GFlowNet together. Here the backbone of a finished
run (MC dropout, Concrete, Contextual, ID-GFlowOut or no dropout) is kept bit for bit: every weight
and buffer is frozen and the backbone stays in eval mode, so BatchNorm neither uses batch statistics
nor updates its running ones (`GFlowOut(net, freeze_backbone=True)`); only q(z|x,y), p(z|x) and
log Z(x, y) are fitted on the same training split, with GFlowOut's trajectory-balance and prior
losses. Prediction then samples masks from the learned prior p(z|x), as GFlowOut does.

    gflowout posthoc runs/mnist-mc-1 --out runs/mnist-mc-1-posthoc --epochs 5

or in Python:

    net = gflowout.load_backbone("runs/mnist-mc-1")             # the trained weights, checked
    method = gflowout.GFlowOut(net, freeze_backbone=True)        # then any training loop
    gflowout.posthoc("runs/mnist-mc-1", "runs/mnist-mc-1-posthoc", epochs=5)   # or the harness

The run folder gets what `gflowout train` writes (checkpoints, logs, results.json; `--resume` continues
it), plus posthoc.json (the source, its weights' digest, checked unchanged after the fit, and the
fit's cost against the source's training) and, unless evaluation is skipped, comparison.json and
comparison.md: the post-hoc GFlowOut against the source method and MC dropout on the same network
(accuracy, NLL, ECE, shifted accuracy, OOD AUROC; `extra_methods` adds rows, for example a
temperature-scaled model).
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gflowout.atomic import atomic_write_json, atomic_write_text
from gflowout.checkpoint import load_method
from gflowout.errors import CheckpointError, ConfigError

# Loading the source's backbone lives in `trained_backbone`; its public names stay importable from here.
from gflowout.trained_backbone import (
    MASKED_SOURCES,
    NoMaskTrainingWarning,
    describe_backbone,
    load_backbone,
    load_backbone_state,
    read_source,
    warn_if_never_masked,
)

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_EVALUATION",
    "MASKED_SOURCES",
    "NoMaskTrainingWarning",
    "compare_posthoc",
    "comparison_markdown",
    "load_backbone",
    "load_backbone_state",
    "posthoc",
    "posthoc_config",
    "source_train_time",
    "summarise",
    "warn_if_never_masked",
]

DEFAULT_EPOCHS = 5


def posthoc_config(source_config: Mapping[str, Any], epochs: int | None = None, overrides: Sequence[str] = ()) -> Any:
    """The harness config of a post-hoc GFlowOut fit: the source run's data, backbone, seed and trainer settings,
    method gflowout with freeze_backbone and beta = 1 (over the source config's `methods.gflowout` options),
    then `overrides`; `epochs` epochs (default DEFAULT_EPOCHS), no step limit.

    beta = 1 makes q(z|x,y) the posterior of the masks under the fixed trained network; the paper's MNIST
    schedule (0.001, x3.16 every 30 epochs) anneals over a 200-epoch joint training and would stay at 0.001
    in a short fit. Change it with `method.options.beta=...`.
    """
    from gflowout.config import apply_override, config_from_dict

    raw = copy.deepcopy(dict(source_config))
    raw["method"] = {"name": "gflowout", "options": {"freeze_backbone": True, "beta": 1.0}}
    raw.setdefault("trainer", {})
    raw["trainer"]["max_epochs"] = int(epochs if epochs is not None else DEFAULT_EPOCHS)
    raw["trainer"]["max_steps"] = -1
    for item in overrides:
        apply_override(raw, item)
    config = config_from_dict(raw)
    if config.method.name != "gflowout" or config.method_options().get("freeze_backbone") is not True:
        raise ConfigError(
            "a post-hoc fit is GFlowOut with method.options.freeze_backbone=true; do not override "
            "method.name or freeze_backbone (to retrain the network use `gflowout train`)"
        )
    model = source_config.get("model", {})
    if (config.model.backbone, config.model.options) != (model.get("backbone"), model.get("options", {})):
        raise CheckpointError(
            f"the source run trained backbone {model.get('backbone')!r} with options {model.get('options', {})}; "
            f"a post-hoc fit must use that network, not {config.model.backbone!r} with {config.model.options} "
            "(remove the model.* overrides)"
        )
    return config


def source_train_time(run_dir: Path) -> float | None:
    """The source run's recorded training seconds: a benchmark run's trained.json, else results.json's
    train_time_s (every session of a resumed run), else its fit_time_s (older runs: the last call only)."""
    for name, key in (
        ("trained.json", "train_time_s"),
        ("results.json", "train_time_s"),
        ("results.json", "fit_time_s"),
    ):
        path = run_dir / name
        if path.is_file():
            try:
                value = json.loads(path.read_text()).get(key)
            except (OSError, ValueError):
                continue
            if isinstance(value, (int, float)):
                return float(value)
    return None


def posthoc(
    source: str | Path,
    out_dir: str | Path,
    epochs: int | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    evaluate: bool = True,
    evaluation: Mapping[str, Any] | None = None,
    extra_methods: Mapping[str, Any] | None = None,
    allow_custom_code: bool = False,
    **trainer_overrides: Any,
) -> Path:
    """Fit GFlowOut's generators on the frozen backbone of a trained run, then compare; returns the run folder.

    source: a run folder (its checkpoints/best.ckpt) or a checkpoint of `gflowout train`.
    epochs: epochs of the fit (default DEFAULT_EPOCHS); overrides: `key.path=value` config overrides
        (e.g. "trainer.val_samples=4", "method.options.beta=0.1"); model.* must stay the source's.
    resume: continue an interrupted fit from out_dir/checkpoints/last.ckpt (as `gflowout train --resume`).
    evaluate, evaluation, extra_methods: see `compare_posthoc`.
    """
    from gflowout.config import config_from_dict
    from gflowout.train import fit, state_digest, weight_digest

    source = Path(source)
    path, metadata, state = read_source(source, allow_custom_code)
    source_method = str(metadata.get("method"))
    warn_if_never_masked(source_method, str(source))
    config = posthoc_config(metadata["config"], epochs, overrides)
    source_config = config_from_dict(metadata["config"])
    if (config.data.name, config.data.split_seed, config.data.val_fraction, config.data.limit_train) != (
        source_config.data.name,
        source_config.data.split_seed,
        source_config.data.val_fraction,
        source_config.data.limit_train,
    ):
        warnings.warn(
            "the post-hoc fit's data split differs from the source run's (data.* overrides): the generators "
            "are fitted on other examples than the network was trained on",
            UserWarning,
            stacklevel=2,
        )
    out_dir = Path(out_dir)
    described = describe_backbone(metadata)

    def prepare(method: Any) -> None:
        load_backbone_state(method.net, state, str(path), described)

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the frozen backbone, on purpose
        fit(config, out_dir, resume=resume, prepare_method=prepare, **trainer_overrides)
    fit_time = time.perf_counter() - started
    trained, _ = load_method(out_dir, allow_custom_code=allow_custom_code)
    reference = state_digest(state)
    after = weight_digest(trained.net)
    if after != reference:
        raise CheckpointError(
            f"the post-hoc fit in {str(out_dir)!r} changed the backbone's weights or buffers "
            f"(digest {after[:12]} vs the source's {reference[:12]}); this is a bug, please report it"
        )
    source_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    source_time = source_train_time(source_dir)
    results = json.loads((out_dir / "results.json").read_text()) if (out_dir / "results.json").is_file() else {}
    fit_time = float(results.get("fit_time_s", fit_time))  # as the source's: fit's own timing (training + test)
    record = {
        "source": str(path),
        "source_method": source_method,
        "source_epochs": source_config.trainer.max_epochs,
        "source_train_time_s": source_time,
        "backbone_digest": reference,
        "fit_time_s": fit_time,
        "fit_epochs": config.trainer.max_epochs,
        "fit_batches": results.get("batches"),
        "fit_time_fraction": fit_time / source_time if source_time else None,
        "resumed": bool(resume),
    }
    atomic_write_json(out_dir / "posthoc.json", record)
    if evaluate:
        source_model, _ = load_method(path, allow_custom_code=allow_custom_code)
        rows: dict[str, Any] = {source_method: source_model}
        if source_method != "mc_dropout":  # MC dropout on the same network: the reference row
            from gflowout.methods.mc import MCDropout

            block = source_config.methods.get("mc_dropout")
            rows["mc_dropout (same network)"] = MCDropout(
                copy.deepcopy(source_model.net), **(block.options if block else {})
            )
        rows["gflowout (post-hoc)"] = trained
        compare_posthoc(out_dir, {**rows, **(extra_methods or {})}, config, evaluation, record)
    return out_dir


# --- comparison ------------------------------------------------------------------------------------


def summarise(result: Mapping[str, Any]) -> dict[str, float]:
    """The comparison's columns from a result of `gflowout.eval.evaluate.evaluate_method` (or clean metrics only):
    accuracy, NLL, ECE (15 bins), mean accuracy over the shifted test sets, accuracy under random rotation,
    and OOD AUROC (mean over the OOD sets) by predictive entropy and by mutual information."""
    clean = result.get("clean", {})
    shifted = [m.get("accuracy") for levels in result.get("shifts", {}).values() for m in levels.values()]
    ood = result.get("ood", {})

    def mean(values: list[Any]) -> float:
        values = [v for v in values if isinstance(v, (int, float))]
        return float(sum(values) / len(values)) if values else math.nan

    return {
        "accuracy": clean.get("accuracy", math.nan),
        "nll": clean.get("nll", math.nan),
        "ece": clean.get("ece15", clean.get("ece", math.nan)),
        "shifted_accuracy": mean(shifted),
        "rotated_accuracy": result.get("random_rotation", {}).get("accuracy", math.nan),
        "ood_auroc_entropy": mean([s.get("predictive_entropy", {}).get("auroc") for s in ood.values()]),
        "ood_auroc_mi": mean([s.get("mutual_information", {}).get("auroc") for s in ood.values()]),
    }


def _evaluate(method: Any, config: Any, evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """evaluate_method on a registered data set; clean test metrics through the data module otherwise."""
    from gflowout.data.datasets import DATASET_INFO

    if config.data.name in DATASET_INFO and config.data.module is None:
        from gflowout.eval.evaluate import evaluate_method
        from gflowout.training.evaluation import validation_tensors

        settings = dict(evaluation)
        samples = settings.pop("samples", 20)
        # a temperature fitted on the run's validation split: every row also gets its "+ TS" twin
        validation = validation_tensors(config, limit=settings.get("limit"))
        return evaluate_method(
            method,
            config.data.name,
            root=config.data.root,
            samples=samples,
            seed=config.seed,
            validation=validation,
            **settings,
        )
    from gflowout.eval.streaming import stream_predictions
    from gflowout.rng import private_rng
    from gflowout.training.build import build_datamodule

    datamodule = build_datamodule(config.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    with private_rng(torch.device("cpu")):
        torch.manual_seed(config.seed)
        sums, _, _ = stream_predictions(method, datamodule.test_dataloader(), int(evaluation.get("samples", 20)))
    return {"dataset": config.data.name, "seed": config.seed, "clean": sums.compute()}


DEFAULT_EVALUATION: dict[str, Any] = {"samples": 20, "limit": 2000, "rotation_angles": [], "severities": [3]}


def compare_posthoc(
    out_dir: str | Path,
    methods: Mapping[str, Any],
    config: Any,
    evaluation: Mapping[str, Any] | None = None,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate each named method (same network, same test images and seeds) and write comparison.json / .md.

    methods: {row name: a DropoutMethod} (the source method and the post-hoc GFlowOut; add for example
        any object with predict(x, samples)); each row also gets a "NAME + TS" twin with a temperature fitted on
        the validation split when the data set is a registered one.
    evaluation: keyword arguments of `evaluate_method` (default DEFAULT_EVALUATION: S = 20, a fixed 2000-image
        test subset, every shift of the data set's kind at severity 3, random rotation, the default OOD sets).
    """
    out_dir = Path(out_dir)
    settings = {**DEFAULT_EVALUATION, **dict(evaluation or {})}
    rows: dict[str, dict[str, float]] = {}
    full: dict[str, Any] = {}
    for name, method in methods.items():
        started = time.perf_counter()
        result = _evaluate(method, config, settings)
        full[name] = result
        rows[name] = {**summarise(result), "eval_time_s": time.perf_counter() - started}
        if result.get("ts"):  # the same network with its temperature (Guo et al. 2017), fitted on validation
            rows[f"{name} + TS"] = {
                **summarise(result["ts"]),
                "temperature": result.get("temperature_scaling", {}).get("temperature"),
            }
    payload = {"evaluation": settings, "rows": rows, "posthoc": dict(record or {}), "results": full}
    atomic_write_json(out_dir / "comparison.json", payload)
    atomic_write_text(out_dir / "comparison.md", comparison_markdown(rows, record or {}, settings))
    return payload


COLUMNS = (
    ("accuracy", "accuracy"),
    ("nll", "NLL"),
    ("ece", "ECE"),
    ("shifted_accuracy", "shifted acc."),
    ("rotated_accuracy", "rotated acc."),
    ("ood_auroc_entropy", "OOD AUROC (entropy)"),
    ("ood_auroc_mi", "OOD AUROC (MI)"),
)


def comparison_markdown(
    rows: Mapping[str, Mapping[str, float]], record: Mapping[str, Any], settings: Mapping[str, Any]
) -> str:
    """The comparison as a Markdown table, with the fit's cost."""

    def cell(value: Any) -> str:
        return "–" if not isinstance(value, (int, float)) or value != value else f"{value:.4f}"

    lines = [
        "# Post-hoc GFlowOut on a trained network",
        "",
        f"Same network, same test images; S = {settings.get('samples')} mask samples; test subset "
        f"{settings.get('limit') or 'all'}; shifted accuracy = mean over the shifts at severities "
        f"{settings.get('severities')}.",
        "",
        "| method | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(row.get(key)) for key, _ in COLUMNS) + " |")
    if record:
        source_time = record.get("source_train_time_s")
        lines += [
            "",
            f"Fit: {record.get('fit_epochs')} epochs, {record.get('fit_time_s', math.nan):.1f} s "
            f"(source: {record.get('source_method')}, {record.get('source_epochs')} epochs, "
            + (
                f"{source_time:.1f} s recorded; the fit took {100 * record['fit_time_fraction']:.1f} % of it)"
                if source_time
                else "training time not recorded)"
            ),
        ]
    return "\n".join(lines) + "\n"
