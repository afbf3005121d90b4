"""Keras' gradient accumulation as every optimizer update reads it from the scalar buffer (slots ``HYPER``):
hyper[accumulation] = n >= 2 (0 without). The NumPy form of kernels/optimizer_steps.cuh."""
from __future__ import annotations

import math

from .shared_constants import HYPER


def update_count(hyper) -> float:
    """Keras' ``optimizer.iterations`` as the update formulas see it: iterations // n while accumulating."""
    n, it = float(hyper[HYPER["accumulation"]]), float(hyper[HYPER["iterations"]])
    return float(math.floor(it / n)) if n else it


def skipped(hyper) -> bool:
    """Whether this step only accumulates its gradients (Keras: (iterations + 1) % n != 0): no update."""
    n = float(hyper[HYPER["accumulation"]])
    return bool(n) and (float(hyper[HYPER["iterations"]]) + 1) % n != 0
