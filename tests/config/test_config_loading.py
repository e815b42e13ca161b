"""Typed configuration: YAML + overrides, unknown keys with the closest match, wrong types, method blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from gflowout.config import ExperimentConfig, apply_override, config_from_dict, load_config
from gflowout.errors import ConfigError
from gflowout.training.build import build_method_for, validate_model_options

REPO = Path(__file__).resolve().parents[2]


def _is_benchmark_config(path: Path) -> bool:
    """A grid (its own schema: `config`, `methods`, `seeds`), not a harness config."""
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}
    return isinstance(raw, dict) and "config" in raw and "seeds" in raw


def _protocol(path: Path) -> str | None:
    """ "active" or "transfer" for a downstream-protocol grid (`gflowout active-learning` / `gflowout transfer`)."""
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}
    return next((key for key in ("active", "transfer") if key in raw), None) if isinstance(raw, dict) else None


def _is_cohort_config(path: Path) -> bool:
    """A `gflowout cohort` protocol (its own schema: a tabular `data.source`, `held_out`)."""
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}
    return isinstance(raw, dict) and "held_out" in raw


ALL_CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
COHORTS = [p for p in ALL_CONFIGS if _is_cohort_config(p)]
SHIPPED = [p for p in ALL_CONFIGS if not _is_benchmark_config(p) and not _is_cohort_config(p)]
GRIDS = [p for p in ALL_CONFIGS if _is_benchmark_config(p) and _protocol(p) is None]
PROTOCOL_GRIDS = [p for p in ALL_CONFIGS if _is_benchmark_config(p) and _protocol(p) is not None]


def test_unknown_key_lists_valid_keys_and_closest_match() -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict({"trainer": {"max_epoch": 3}})
    message = str(error.value)
    assert "'trainer.max_epoch'" in message
    assert "did you mean 'max_epochs'?" in message
    for valid in ("max_epochs", "val_samples", "devices", "strategy"):
        assert repr(valid) in message


def test_unknown_top_level_key_and_nested_group_key() -> None:
    with pytest.raises(ConfigError, match=r"'sead'.*did you mean 'seed'"):
        config_from_dict({"sead": 1})
    with pytest.raises(ConfigError, match=r"'optim.backbone.learning_rate'.*valid keys"):
        config_from_dict({"optim": {"backbone": {"learning_rate": 0.1}}})


@pytest.mark.parametrize(
    ("raw", "key", "expected"),
    [
        ({"data": {"batch_size": 1.5}}, "data.batch_size", "int"),
        ({"data": {"batch_size": "128"}}, "data.batch_size", "int"),
        ({"trainer": {"deterministic": "yes"}}, "trainer.deterministic", "bool"),
        ({"seed": True}, "seed", "int"),
        ({"optim": {"backbone": {"lr": "fast"}}}, "optim.backbone.lr", "float or null"),
        ({"optim": {"backbone": {"schedule": {"kind": "step"}}}}, "optim.backbone.schedule.kind", "'multistep'"),
        (
            {"optim": {"backbone": {"schedule": {"milestones": [25, "x"]}}}},
            "optim.backbone.schedule.milestones[1]",
            "int",
        ),
        ({"model": {"options": [1, 2]}}, "model.options", "dict"),
    ],
)
def test_wrong_type_names_the_key_and_expected_type(raw: dict, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict(raw)
    assert repr(key) in str(error.value) and expected in str(error.value)


def test_ints_are_accepted_where_floats_are_expected() -> None:
    config = config_from_dict({"optim": {"backbone": {"lr": 1}}, "data": {"val_fraction": 0.25}})
    assert config.optim["backbone"].lr == 1.0 and isinstance(config.optim["backbone"].lr, float)


def test_overrides_parse_yaml_scalars_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\ndata: {name: mnist, batch_size: 128}\n")
    config = load_config(
        path,
        [
            "data.batch_size=64",
            "optim.backbone.schedule.milestones=[25, 40]",
            "optim.backbone.lr=5e-2",
            "trainer.devices=[0, 1]",
            "data.root=null",
        ],
    )
    assert config.data.batch_size == 64
    assert config.optim["backbone"].schedule.milestones == [25, 40]
    assert config.optim["backbone"].lr == 0.05
    assert config.trainer.devices == [0, 1]
    assert config.data.root is None


def test_malformed_override_and_override_through_a_scalar() -> None:
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_override({}, "data.batch_size")
    with pytest.raises(ConfigError, match="'seed' holds 1, not a mapping"):
        apply_override({"seed": 1}, "seed.value=2")


def test_method_blocks_merge_over_shared_settings() -> None:
    raw = {
        "method": {"name": "gflowout", "options": {"train_temperature": 1.5}},
        "optim": {"backbone": {"lr": 0.05, "optimizer": "sgd", "schedule": {"kind": "multistep", "milestones": [25]}}},
        "methods": {
            "gflowout": {
                "options": {"beta": "paper_mnist", "train_temperature": 2.0},
                "optim": {"backbone": {"lr": 0.01}},
            },
            "mc_dropout": {"options": {"keep_prob": 0.5}},
        },
    }
    config = config_from_dict(raw)
    # method.options (e.g. from --set) win over the block; the block's optim overrides field by field
    assert config.method_options() == {"beta": "paper_mnist", "train_temperature": 1.5}
    backbone = config.group_optim()["backbone"]
    assert (backbone.lr, backbone.optimizer, backbone.schedule.milestones) == (0.01, "sgd", [25])
    config.method.name = "mc_dropout"
    config.method.options = {}
    assert config.method_options() == {"keep_prob": 0.5}
    assert config.group_optim()["backbone"].lr == 0.05


def test_unknown_method_option_names_valid_options_and_closest() -> None:
    config = config_from_dict({"method": {"name": "mc_dropout", "options": {"keep_probability": 0.5}}})
    with pytest.raises(ConfigError) as error:
        validate_model_options(config)
    assert "'keep_probability'" in str(error.value) and "did you mean 'keep_prob'?" in str(error.value)
    assert "'scaling'" in str(error.value)


def test_unknown_backbone_option_and_unknown_method_name() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'hidden'"):
        validate_model_options(config_from_dict({"method": {"name": "none"}, "model": {"options": {"hiden": [8]}}}))
    with pytest.raises(ConfigError, match="choose one of"):
        validate_model_options(config_from_dict({"method": {"name": "gflowoot"}}))


def test_dataset_size_is_filled_from_the_training_split() -> None:
    config = config_from_dict({"method": {"name": "concrete"}, "model": {"options": {"hidden": [8]}}})
    method = build_method_for(config, num_classes=10, input_shape=(1, 28, 28), dataset_size=1234)
    assert method.dataset_size == 1234


def test_yaml_round_trip_keeps_every_field() -> None:
    config = config_from_dict({"seed": 7, "optim": {"prior": {"clip_norm": 1.0}}, "trainer": {"devices": "auto"}})
    again = config_from_dict(__import__("yaml").safe_load(config.to_yaml()))
    assert again == config and isinstance(again, ExperimentConfig)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_configs_validate_for_every_method_they_name(path: Path) -> None:
    config = load_config(path)
    names = set(config.methods) | {config.method.name}
    for name in sorted(names):
        if ":" in name:  # a stand-in importable only inside the harness tests
            continue
        validate_model_options(load_config(path, method=name))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_configs_optim_groups_exist_in_every_method(path: Path) -> None:
    """Building each method of a shipped config accepts its per-group optimiser blocks (names and fields)."""
    from gflowout.data.datasets import DATASET_INFO
    from gflowout.training.module import MethodModule

    base = load_config(path)
    if base.data.module is not None:
        return  # the synthetic stand-in config: exercised by the harness tests
    info = DATASET_INFO[base.data.name]
    for name in sorted(set(base.methods) | {base.method.name}):
        config = load_config(path, method=name)
        method = build_method_for(config, info.num_classes, info.image_shape, dataset_size=100)
        module = MethodModule(method, config, datamodule=None, metadata={})
        for group, block in config.group_optim().items():
            for field_name, value in block.spec_overrides().items():
                assert getattr(module.specs[group], field_name) == value


def test_float16_precision_is_refused_with_the_alternatives() -> None:
    import pytest as _pytest

    from gflowout.config import config_from_dict
    from gflowout.errors import ConfigError

    with _pytest.raises(ConfigError, match="bf16-mixed"):
        config_from_dict({"trainer": {"precision": "16-mixed"}})
    assert config_from_dict({"trainer": {"precision": "bf16-mixed"}}).trainer.precision == "bf16-mixed"


def test_precision_takes_lightnings_spellings_including_a_bare_yaml_int() -> None:
    import pytest as _pytest

    from gflowout.config import config_from_dict
    from gflowout.errors import ConfigError

    assert config_from_dict({"trainer": {"precision": 32}}).trainer.precision == "32"  # `precision: 32` in YAML
    assert config_from_dict({"trainer": {"precision": 64}}).trainer.precision == "64"
    with _pytest.raises(ConfigError, match="float16"):
        config_from_dict({"trainer": {"precision": 16}})
    with _pytest.raises(ConfigError, match="use one of"):
        config_from_dict({"trainer": {"precision": "33-true"}})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"seed": -1}, r"'seed' must be in \[0, 2\*\*32 - 1\]"),
        ({"seed": 2**32}, r"'seed' must be in"),
        ({"optim": {"backbone": {"lr": -1.0}}}, r"'optim.backbone.lr' must be > 0.0"),
        ({"optim": {"backbone": {"lr": 0.0}}}, r"'optim.backbone.lr' must be > 0.0"),
        ({"optim": {"prior": {"weight_decay": -0.1}}}, r"'optim.prior.weight_decay' must be >= 0.0"),
        (
            {"methods": {"mc_dropout": {"optim": {"backbone": {"clip_norm": 0.0}}}}},
            r"'methods.mc_dropout.optim.backbone.clip_norm'",
        ),
        ({"data": {"num_workers": -1}}, r"'data.num_workers' must be >= 0"),
        ({"trainer": {"limit_val_batches": -1}}, r"'trainer.limit_val_batches' must be > 0"),
        (
            {"methods": {"gflowuot": {"options": {"beta": 1.0}}}},
            r"unknown method block 'methods.gflowuot'.*did you mean 'gflowout'",
        ),
    ],
)
def test_out_of_range_values_and_unknown_method_blocks_are_config_errors(raw: dict, message: str) -> None:
    """Each used to pass and fail later with a raw traceback (or, for a typo'd method block, be ignored)."""
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_in_range_edges_and_custom_method_blocks_are_accepted() -> None:
    config = config_from_dict(
        {
            "seed": 2**32 - 1,
            "optim": {"backbone": {"lr": 1e-9, "weight_decay": 0.0}},
            "data": {"num_workers": 0},
            "methods": {"my_pkg.methods:Custom": {"options": {}}},
        }
    )
    assert config.seed == 2**32 - 1


@pytest.mark.parametrize("path", GRIDS, ids=[p.name for p in GRIDS])
def test_shipped_benchmark_grids_load_and_resolve_every_run(path: Path) -> None:
    """Every shipped grid loads, and each of its runs resolves to a valid harness config with valid options."""
    from gflowout.experiments.benchmark import load_benchmark_config, run_config

    bench = load_benchmark_config(path)
    for spec in bench.runs():
        validate_model_options(run_config(bench, spec))


@pytest.mark.parametrize("path", PROTOCOL_GRIDS, ids=[p.name for p in PROTOCOL_GRIDS])
def test_shipped_protocol_grids_load_and_resolve_every_run(path: Path) -> None:
    """Every shipped active-learning / transfer grid loads and each run resolves to valid options, with optimiser
    blocks its method has (and no learning-rate schedule, which the protocols' loop refuses)."""
    from gflowout.data.datasets import DATASET_INFO
    from gflowout.experiments import active_learning, transfer
    from gflowout.experiments.downstream_config import load_active_learning_config, load_transfer_config
    from gflowout.experiments.plain_training import build_seeded_method, optimizer_overrides

    protocol = _protocol(path)
    config = (load_active_learning_config if protocol == "active" else load_transfer_config)(path)
    default = config.harness_config(None, config.methods[0], config.seeds[0], None).data.name
    runs = (active_learning if protocol == "active" else transfer).grid(config, default)
    assert runs
    built: set[tuple[str, str]] = set()
    for run in runs:
        harness = config.harness_config(run.dataset, run.method, run.seed, None)
        validate_model_options(harness)
        if (run.dataset, run.method) not in built:
            built.add((run.dataset, run.method))
            info = DATASET_INFO[run.dataset]
            optimizer_overrides(harness, build_seeded_method(harness, info.num_classes, info.image_shape, 100, 1))


@pytest.mark.parametrize("path", COHORTS, ids=[p.name for p in COHORTS])
def test_shipped_cohort_configs_load(path: Path) -> None:
    from gflowout.experiments.cohort import load_cohort_config

    config = load_cohort_config(path)
    for name in config.methods:
        assert name in {"none", "mc_dropout", "concrete", "contextual", "id_gflowout", "gflowout", "ensemble"}
