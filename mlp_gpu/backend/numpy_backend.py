"""The CPU backend: the reference implementation of every op, on NumPy."""
from __future__ import annotations

import numpy as np

from .base import Backend
from .layer_ops import LayerOpsReference


class NumpyBackend(LayerOpsReference, Backend):
    """Runs everywhere; its ops are the ones the GPU kernels are tested against."""

    name = "numpy"
    xp = np

    def __repr__(self) -> str:
        return "NumpyBackend()"
