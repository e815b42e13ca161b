"""Benchmark (not a test): seconds to apply each shift to 10000 images, at severity 3.

MNIST-C-style corruptions and rotations on the real MNIST test set when it is present (else
synthetic digits), CIFAR-10-C-style corruptions on 10000 synthetic 32 x 32 colour images
(the CIFAR-10 files are rarely present here; the work does not depend on the content much).
The median over --repeats runs is reported.

    .venv/bin/python benchmarks/bench_shifts.py [--threads 2] [--repeats 3] [--count 10000] [--root DIR] [--skip-cifar]

Target (issue 6): the demo corrupts 10000 MNIST test images for several corruptions within seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from scipy import ndimage

from gflowout.data.shifts import apply_shift, available_shifts


def mnist_images(count: int, root: str | None) -> tuple[np.ndarray, str]:
    """float32 [count, 28, 28]: the real MNIST test digits if present, else tiled synthetic ones."""
    try:
        from gflowout.data.datasets import load_split

        images, _ = load_split("mnist", "test", root=root)
        return np.resize(images, (count, 28, 28)).astype(np.float32) / 255.0, "real MNIST test set"
    except Exception as error:  # noqa: BLE001 - fall back to synthetic digits, saying why
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:28, 0:28]
        centres = rng.uniform(10, 17, size=(count, 2))
        radii = rng.uniform(4, 7, size=(count, 1, 1))
        ring = np.abs(np.hypot(yy - centres[:, :1, None], xx - centres[:, 1:, None]) - radii) < 1.3
        images = ndimage.gaussian_filter(ring.astype(np.float32), (0, 0.7, 0.7))
        return images / images.max(), f"synthetic digits ({error.__class__.__name__}: no real MNIST)"


def colour_images(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.random((count, 32, 32, 3), dtype=np.float32), (0, 2, 2, 0))
    return np.clip((field - field.mean()) * 6 + 0.45, 0, 1)


def time_shift(images: np.ndarray, name: str, repeats: int) -> float:
    times = []
    for repeat in range(repeats):
        start = time.perf_counter()
        apply_shift(images, name, 3, seed=repeat)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--root", default=None, help="data root holding MNIST (default: the usual data root)")
    parser.add_argument("--skip-cifar", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    grey, source = mnist_images(args.count, args.root)
    print(f"MNIST-C-style + rotations on {len(grey)} images ({source}), severity 3, median of {args.repeats}:")
    total = 0.0
    for name in available_shifts("mnist") + ["random_rotation", "rotation_45"]:
        seconds = time_shift(grey, name, args.repeats)
        total += seconds
        print(f"  {name:16s} {seconds:6.2f} s")
    print(f"  {'all':16s} {total:6.2f} s")
    if args.skip_cifar:
        return
    colour = colour_images(args.count)
    print(f"CIFAR-10-C-style on {len(colour)} synthetic 32x32x3 images, severity 3, median of {args.repeats}:")
    total = 0.0
    for name in available_shifts("cifar"):
        seconds = time_shift(colour, name, args.repeats)
        total += seconds
        print(f"  {name:16s} {seconds:6.2f} s")
    print(f"  {'all':16s} {total:6.2f} s")


if __name__ == "__main__":
    main()
