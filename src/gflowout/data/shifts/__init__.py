"""Distribution shifts for robustness evaluation: rotations, MNIST-C-style and CIFAR-10-C-style corruptions.

All shifts act on float images in [0, 1] BEFORE normalisation, numpy [N, H, W] (grey) or
[N, H, W, 3] (colour), and return the same shape as float32 clipped to [0, 1]. They are
deterministic given `seed` and the batch (a fresh np.random.default_rng(seed) per call draws for
the whole batch at once, so a sub-batch gets other draws; the global RNG is never used) and
vectorised over the batch (timings: benchmarks/bench_shifts.py and benchmarks/README.md).

Names (see available_shifts):
- corruptions, 5 severities each: MNIST-C-style for grey images (mnist_c.py, after Mu & Gilmer
  2019) and CIFAR-10-C-style for colour images (cifar_c.py, Hendrycks & Dietterich 2019
  constants). apply_shift picks the table from the layout, or from `kind`.
- rotations: "random_rotation" (the paper's test-time shift, uniform 0-360 degrees per image)
  and "rotation_<deg>" (a fixed angle, e.g. "rotation_45"; the sweep is ROTATION_SWEEP_DEG).
  Severity is checked but not used for them: pass 1.

The names and apply_shift live in registry.py; shifted_split (cache.py) builds and caches a shifted test split so
every method sees the same images; normalise it afterwards with gflowout.data.datasets.to_tensor (training
statistics).
"""

from __future__ import annotations

from ._common import SEVERITIES
from .cache import SHIFTS_VERSION, shifted_split
from .cifar_c import CIFAR_C_STYLE_PARAMS
from .mnist_c import MNIST_C_STYLE_PARAMS
from .registry import KINDS, apply_shift, available_shifts, infer_kind, is_known_shift, rotation_shifts
from .rotation import ROTATION_SWEEP_DEG, random_rotation, rotate

__all__ = [
    "CIFAR_C_STYLE_PARAMS",
    "KINDS",
    "MNIST_C_STYLE_PARAMS",
    "ROTATION_SWEEP_DEG",
    "SEVERITIES",
    "SHIFTS_VERSION",
    "apply_shift",
    "available_shifts",
    "infer_kind",
    "is_known_shift",
    "random_rotation",
    "rotate",
    "rotation_shifts",
    "shifted_split",
]
