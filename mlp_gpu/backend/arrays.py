"""Which array module computes on a concrete array: the one place outside the backends' own code that
tells a CuPy array from a NumPy one (``mlp_gpu.ops`` on concrete arrays, as Keras' backend dispatch)."""
from __future__ import annotations

import sys

import numpy as np


def array_module(*values):
    """cupy when any value is a CuPy array (then cupy is already imported), else numpy."""
    for value in values:
        if type(value).__module__.split(".")[0] == "cupy":
            return sys.modules["cupy"]
    return np
