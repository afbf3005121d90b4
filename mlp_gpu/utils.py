"""Keras' ``keras.utils`` helpers: ``set_random_seed``, ``to_categorical`` and ``custom_object_scope``.

Every random choice mlp_gpu makes without an explicit seed (initial weights, the shuffles of
``fit``, dropout masks) takes its seed from :func:`draw_seed`. After ``set_random_seed(s)`` those
seeds come from a generator seeded with s, so a script run twice gives the same results, as
Keras' ``keras.utils.set_random_seed`` promises; explicit seeds (``compile(seed=...)``,
``fit(seed=...)``, ``HeNormal(seed=...)``) still win.
"""
from __future__ import annotations

import contextlib
import random

import numpy as np

from . import backend
from ._checks import check_int

# Shrink what a script trains, for running the documentation's examples quickly (tests/test_docs.py sets them):
# the dataset loaders return at most EXAMPLE_ROWS rows of each split, fit trains at most EXAMPLE_EPOCHS epochs.
EXAMPLE_ROWS = "MLP_GPU_EXAMPLE_ROWS"
EXAMPLE_EPOCHS = "MLP_GPU_EXAMPLE_EPOCHS"

_seeds: np.random.Generator | None = None  # set by set_random_seed; None: fresh entropy


def set_random_seed(seed) -> None:
    """Seed Python's ``random``, NumPy's global generator and every seed mlp_gpu draws itself."""
    global _seeds
    seed = check_int(seed, "seed", 0)
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    _seeds = np.random.default_rng(seed)


def draw_seed() -> int:
    """A seed for a random choice the caller was given no seed for: from the generator that
    ``set_random_seed`` seeded, or fresh entropy when it was never called."""
    if _seeds is not None:
        return int(_seeds.integers(0, 1 << 63))
    return int(np.random.SeedSequence().entropy % (1 << 63))


def to_categorical(x, num_classes=None) -> np.ndarray:
    """One-hot rows for integer class labels, as Keras: ``to_categorical([0, 2], 3)`` is
    ``[[1, 0, 0], [0, 0, 1]]`` (float64, the class axis last; a trailing axis of 1 is dropped)."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and np.all(np.isfinite(x)) and np.all(x == np.round(x)):
        x = x.astype(np.int64)
    if x.dtype.kind not in "iub":
        raise ValueError(f"x: expected integer class labels, got dtype {x.dtype}")
    shape = x.shape[:-1] if x.ndim > 1 and x.shape[-1] == 1 else x.shape
    x = x.reshape(-1).astype(np.int64)
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    num_classes = check_int(num_classes, "num_classes", 1)
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"x: class labels must lie in [0, {num_classes - 1}] for num_classes={num_classes}, "
                         f"found values from {x.min()} to {x.max()}")
    out = np.zeros((x.size, num_classes))
    out[np.arange(x.size), x] = 1
    return out.reshape(shape + (num_classes,))


_custom_scopes: list[dict] = []  # innermost last; see custom_object_scope


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """Within the block, names in ``custom_objects`` ({name: object}) resolve where a config names
    something by string (e.g. a custom ``kernel_initializer`` in a saved model), as in Keras."""
    if custom_objects is None:
        custom_objects = {}
    if not isinstance(custom_objects, dict) or not all(isinstance(k, str) for k in custom_objects):
        raise ValueError(f"custom_objects: expected a dict of name -> object, got {custom_objects!r}")
    _custom_scopes.append(dict(custom_objects))
    try:
        yield
    finally:
        _custom_scopes.pop()


CustomObjectScope = custom_object_scope


def get_custom_object(name: str):
    """The object registered under ``name`` by an enclosing custom_object_scope, or None."""
    for scope in reversed(_custom_scopes):
        if name in scope:
            return scope[name]
    return None


def clear_session(free_memory: bool = True) -> None:
    """``keras.utils.clear_session`` (also ``mlp_gpu.backend.clear_session``, for ``keras.backend``'s)."""
    backend.clear_session(free_memory)
