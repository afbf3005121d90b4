"""The CPU backend: the reference implementation of every op, on NumPy."""
from __future__ import annotations

import numpy as np

from .base import Backend
from .layer_ops import LayerOpsReference
from .optimizer_ops import OptimizerOpsReference


class NumpyBackend(LayerOpsReference, OptimizerOpsReference, Backend):
    """Runs everywhere; its ops are the ones the GPU kernels are tested against."""

    name = "numpy"
    xp = np

    def __repr__(self) -> str:
        return "NumpyBackend()"
