"""Keras' ``keras.backend`` settings: ``floatx``, ``epsilon``, ``backend()``, ``clear_session``, and tf.keras'
``get_value`` / ``set_value`` (gone from Keras 3, still in the books: the learning-rate finder of Géron's
chapter 11 calls ``K.set_value(model.optimizer.learning_rate, lr)``).

mlp_gpu computes in float32 alone, so ``set_floatx`` takes only "float32". Its losses and Normalization
clip at Keras' default epsilon, 1e-7, compiled into the kernels: ``set_epsilon`` changes what ``epsilon()``
returns (Keras code reads it for its own formulas) and says once, as a warning, that mlp_gpu's own numbers
keep 1e-7.
"""
from __future__ import annotations

import gc
import logging
import math
import os
import sys

import numpy as np

from .arrays import array_module
from .cuda import backend as cupy_backend

log = logging.getLogger("mlp_gpu")

DEFAULT_EPSILON = 1e-7  # Keras' default, the constant mlp_gpu's kernels use
_KERAS_FLOATS = ("bfloat16", "float16", "float32", "float64")
_epsilon = DEFAULT_EPSILON
_warned_epsilon = False


def floatx() -> str:
    """The float type every model computes in: always ``"float32"``."""
    return "float32"


def set_floatx(value) -> None:
    """Keras' ``set_floatx``: mlp_gpu takes ``"float32"`` alone; any other value is a clear error."""
    if value == "float32":
        return
    if value in _KERAS_FLOATS:
        raise ValueError(f"set_floatx(value={value!r}): mlp_gpu computes in float32 only (its kernels and flat "
                         "parameter buffers are float32); keep 'float32'")
    raise ValueError(f"set_floatx(value): unknown floatx {value!r}; Keras accepts {', '.join(_KERAS_FLOATS)} "
                     "and mlp_gpu 'float32' alone")


def epsilon() -> float:
    """The fuzz factor, 1e-7 unless ``set_epsilon`` changed it."""
    return _epsilon


def set_epsilon(value) -> None:
    """Set what ``epsilon()`` returns (a finite number > 0). mlp_gpu's losses and Normalization keep 1e-7."""
    global _epsilon, _warned_epsilon
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"set_epsilon(value): expected a finite number > 0, got {value!r}")
    _epsilon = float(value)
    if _epsilon != DEFAULT_EPSILON and not _warned_epsilon:
        _warned_epsilon = True
        log.warning("set_epsilon(%g): backend.epsilon() now returns it, but mlp_gpu's losses and Normalization "
                    "keep clipping at %g, compiled into their kernels", _epsilon, DEFAULT_EPSILON)


def backend() -> str:
    """The name of the backend a model gets by default: ``"cupy"`` or ``"numpy"``.

    Keras returns the name of its one global backend ("tensorflow", "torch", "jax", "numpy"). mlp_gpu picks
    a backend per model; this is the one ``get_backend()`` picks without arguments: ``$MLP_GPU_BACKEND``
    when it names one, else CuPy where it imports and a GPU answers, else NumPy. Nothing is allocated.
    """
    name = os.environ.get("MLP_GPU_BACKEND", "").strip().lower()
    if name in ("numpy", "cupy"):
        return name
    return "cupy" if cupy_backend.unavailable_reason() is None else "numpy"


def clear_session(free_memory: bool = True) -> None:
    """Keras' ``clear_session``: drop unreachable models and, with ``free_memory``, hand the device memory
    CuPy keeps cached for reuse (its memory pools) back to the driver. Layer names need no reset here:
    each model counts its own. Imports nothing new: without CuPy loaded there is no device memory."""
    gc.collect()
    cupy = sys.modules.get("cupy")
    if free_memory and cupy is not None:
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()


def get_value(x):
    """tf.keras' ``get_value``: a scalar variable (``optimizer.learning_rate``) as a Python float, an array
    (NumPy or CuPy) as a NumPy array."""
    if hasattr(x, "assign") and isinstance(x, float):  # an optimizer's HyperValue
        return float(x)
    if isinstance(x, (bool, int, float, np.generic)):
        return x.item() if isinstance(x, np.generic) else x
    xp = array_module(x)
    if xp is not np:
        return xp.asnumpy(x)
    if isinstance(x, np.ndarray):
        return x.copy()
    raise TypeError(f"get_value(x): expected a variable (such as optimizer.learning_rate) or an array, "
                    f"got {type(x).__name__}")


def set_value(x, value) -> None:
    """tf.keras' ``set_value``: write ``value`` into ``x``: a variable with ``assign`` (such as
    ``model.optimizer.learning_rate``, whose device slot the next step reads) or an array, in place."""
    if hasattr(x, "assign"):
        x.assign(value)
        return
    xp = array_module(x)
    if xp is np and not isinstance(x, np.ndarray):
        raise TypeError(f"set_value(x): expected a variable with assign() (such as optimizer.learning_rate) or an "
                        f"array to write into, got {type(x).__name__}; a plain number cannot be changed in place")
    value = np.asarray(value)
    if value.shape != tuple(x.shape) and value.shape != ():
        raise ValueError(f"set_value(value): expected shape {tuple(x.shape)} (that of x), got {value.shape}")
    x[...] = xp.asarray(value, dtype=x.dtype)
