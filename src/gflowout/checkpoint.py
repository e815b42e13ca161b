"""Checkpoints: safe loading, and loading a trained method back.

Atomic: every file is written through gflowout.atomic (temporary file in the same folder, fsync, os.replace).
Lightning's own checkpoint saving goes through `AtomicCheckpointIO`
(gflowout.training.checkpoint_io), so last.ckpt and best.ckpt are atomic too.

Safe: checkpoints load with `torch.load(weights_only=True)`, which only rebuilds tensors and plain
containers; a file whose pickle would import or call anything else is refused with a CheckpointError.

Every checkpoint of the harness carries a "gflowout" entry: method, backbone, dataset, num_classes,
input_shape, dataset_size and the full config, so `load_method` can rebuild the model and refuse a
checkpoint of another model.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gflowout.errors import CheckpointError

if TYPE_CHECKING:
    from gflowout.config import ExperimentConfig
    from gflowout.methods.base import DropoutMethod

METADATA_KEY = "gflowout"


FORMAT_VERSION = 1


# --- safe loading ----------------------------------------------------------------------------------


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; missing, corrupt or code-running files raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; train first or check the path")
    _refuse_non_checkpoint(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _unpickler_detail(error)
        if "GLOBAL" not in detail:
            raise CheckpointError(
                f"checkpoint {str(path)!r} is unreadable (not a torch checkpoint or corrupt: {detail}); "
                "resume from another checkpoint or retrain"
            ) from None
        raise CheckpointError(
            f"checkpoint {str(path)!r} was refused: it asks to import or call {detail!r}, which could run code "
            "when loaded; a gflowout checkpoint holds only tensors and plain containers. Only load files you trust"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is unreadable (truncated or corrupt: {_first_line(error)}); "
            "resume from another checkpoint or retrain"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, expected a dict")
    return checkpoint


def _refuse_non_checkpoint(path: Path) -> None:
    """A CheckpointError for a file that is no torch checkpoint at all (a text file, an image): torch's own
    message for those ('truncated or corrupt: 101') does not say that the file is simply something else."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({error.strerror or error}); check its permissions"
        ) from None
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch's zip format, or the legacy pickle format
        return
    kind = (
        "an empty file"
        if not head
        else ("a text file" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "not a torch checkpoint")
    )
    raise CheckpointError(
        f"{str(path)!r} is not a checkpoint file ({kind}; a checkpoint written by gflowout train is a "
        "torch zip archive, e.g. RUN/checkpoints/best.ckpt)"
    )


def _unpickler_detail(error: BaseException) -> str:
    """The reason torch's weights-only unpickler gave (e.g. 'Unsupported global: GLOBAL posix.system')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line:  # an import the weights-only unpickler blocked: the file wants to run code
            return line
    for index, line in enumerate(lines):
        if line.startswith("WeightsUnpickler error"):
            rest = line.split(":", 1)[1].strip()
            return rest or (lines[index + 1] if index + 1 < len(lines) else line)
    return lines[0] if lines else type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# --- metadata and loading a method -----------------------------------------------------------------


def checkpoint_metadata(
    config: ExperimentConfig, num_classes: int, input_shape: tuple[int, ...], dataset_size: int
) -> dict[str, Any]:
    """What a checkpoint says about the model it holds (plain types only, so weights_only loading works)."""
    return {
        "format_version": FORMAT_VERSION,
        "method": config.method.name,
        "backbone": config.model.backbone,
        "dataset": config.data.name,
        "num_classes": int(num_classes),
        "input_shape": [int(d) for d in input_shape],
        "dataset_size": int(dataset_size),
        "config": config.to_dict(),
    }


def describe(metadata: Mapping[str, Any]) -> str:
    return (
        f"method={metadata.get('method')!r}, backbone={metadata.get('backbone')!r}, dataset={metadata.get('dataset')!r}"
    )


def check_expected(
    metadata: Mapping[str, Any], expect: Mapping[str, Any] | ExperimentConfig | None, source: str
) -> None:
    """Raise a CheckpointError when the checkpoint's method, backbone or dataset differs from `expect`."""
    if expect is None:
        return
    if not isinstance(expect, Mapping):
        expect = {"method": expect.method.name, "backbone": expect.model.backbone, "dataset": expect.data.name}
    unknown = set(expect) - {"method", "backbone", "dataset"}
    if unknown:
        raise ValueError(f"expect may name 'method', 'backbone' and 'dataset', got {sorted(unknown)}")
    differing = {k: v for k, v in expect.items() if v is not None and metadata.get(k) != v}
    if differing:
        asked = ", ".join(f"{k}={v!r}" for k, v in differing.items())
        raise CheckpointError(
            f"checkpoint {source!r} holds {describe(metadata)}, but {asked} was asked; "
            "pick the checkpoint of that model or change the request"
        )


def metadata_of(checkpoint: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The gflowout metadata of a loaded checkpoint, or a CheckpointError when it has none."""
    metadata = checkpoint.get(METADATA_KEY)
    if not isinstance(metadata, dict) or "config" not in metadata:
        raise CheckpointError(
            f"checkpoint {source!r} has no gflowout metadata: it was not written by `gflowout train` "
            f"(keys found: {sorted(checkpoint)[:10]})"
        )
    return metadata


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (-> its checkpoints/best.ckpt, else last.ckpt)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            candidate = path / "checkpoints" / name
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"run folder {str(path)!r} has no checkpoints/best.ckpt or checkpoints/last.ckpt")
    return path


def custom_code(config: ExperimentConfig, data: bool = True) -> list[str]:
    """The "package.module:Class" names a config would import: its method, backbone and (data=True) data module."""
    names = [config.method.name, config.model.backbone] + ([config.data.module or ""] if data else [])
    return [name for name in names if ":" in name]


def refuse_custom_code(config: ExperimentConfig, source: str, data: bool = True) -> None:
    """A CheckpointError when a checkpoint's config names code to import: weights_only loading keeps a file from
    running code through pickle, and this keeps it from doing so through the names in its metadata."""
    names = custom_code(config, data)
    if names:
        raise CheckpointError(
            f"checkpoint {source!r} names custom code {names}; loading it would import that code and build it with "
            "options read from the file. If you trust the file, pass allow_custom_code=True (command line: "
            "--allow-custom-code)"
        )


def load_method(
    path: str | Path,
    expect: Mapping[str, Any] | ExperimentConfig | None = None,
    map_location: Any = "cpu",
    allow_custom_code: bool = False,
) -> tuple[DropoutMethod, ExperimentConfig]:
    """Rebuild the trained method of a checkpoint (or run folder) and its config, in eval mode.

    expect: optional {"method": ..., "backbone": ..., "dataset": ...} (or a config); a checkpoint of
    another model raises a CheckpointError that says what it holds and what was asked.
    allow_custom_code: build a method or backbone the checkpoint names as "package.module:Class" (imported
    and constructed with options from the file: only for files you trust); refused by default.
    """
    from gflowout.config import config_from_dict
    from gflowout.training.build import build_method_for

    path = resolve_checkpoint(path)
    checkpoint = read_checkpoint(path, map_location=map_location)
    metadata = metadata_of(checkpoint, str(path))
    check_expected(metadata, expect, str(path))
    config = config_from_dict(metadata["config"])
    if not allow_custom_code:
        refuse_custom_code(config, str(path), data=False)
    method = build_method_for(
        config,
        num_classes=metadata["num_classes"],
        input_shape=tuple(metadata["input_shape"]),
        dataset_size=metadata["dataset_size"],
    )
    state = {k[len("method.") :]: v for k, v in checkpoint.get("state_dict", {}).items() if k.startswith("method.")}
    try:
        method.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit {describe(metadata)}: {_first_line(error)}"
        ) from None
    method.eval()
    return method, config
