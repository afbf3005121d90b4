"""Keras' ``keras.utils`` helpers: ``set_random_seed``, ``to_categorical``, ``normalize``, ``split_dataset``,
``plot_model`` (from plots.py), ``custom_object_scope`` and the registry of custom objects.

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
from .plots import plot_model  # noqa: F401 -- keras.utils.plot_model

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


def normalize(x, axis=-1, order=2) -> np.ndarray:
    """Keras' ``normalize``: ``x`` divided by its ``order``-norm along ``axis`` (a zero norm counts as 1).

    A NumPy array comes back in its own float type (integers as float64), as Keras' NumPy path returns it.
    Keras divides by the norm expanded at ``axis or -1``, which for ``axis=0`` is the last axis (wrong
    unless x is square); here the norm is expanded where it was taken, for every axis.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iufb":
        raise TypeError(f"normalize(x): expected a numeric array, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError("normalize(x): expected an array of at least one dimension, got a scalar")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"normalize(axis): expected an int in [{-x.ndim}, {x.ndim - 1}] for x of shape "
                         f"{x.shape}, got {axis!r}")
    if isinstance(order, bool) or not isinstance(order, (int, float, np.integer, np.floating)) or np.isnan(order):
        raise ValueError(f"normalize(order): expected a number (2: L2, 1: L1, np.inf: max), got {order!r}")
    norm = np.linalg.norm(x, order, int(axis), keepdims=True)
    norm[norm == 0] = 1
    return x / norm


def _split_size(value, arg, total):
    """Keras' checks of one of split_dataset's sizes (int: rows, float: a fraction, None: the rest)."""
    if value is None:
        return None
    if type(value) not in (int, float):
        raise TypeError(f"split_dataset({arg}): expected an int (rows), a float in (0, 1) or None, "
                        f"got {type(value).__name__} {value!r}")
    if (type(value) is int and not 0 < value < total) or (type(value) is float and not 0 < value < 1):
        raise ValueError(f"split_dataset({arg}): expected a positive int smaller than {total} (the rows) or a "
                         f"float in (0, 1), got {value!r}")
    return round(value * total) if type(value) is float else value


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None, preferred_backend=None):
    """Keras' ``split_dataset`` for arrays: ``(left, right)``, the first ``left_size`` rows and the last
    ``right_size`` rows (rows in between, if the sizes leave some, are in neither), each shaped like
    ``dataset``: an array, or a tuple of arrays for a tuple or list ``(x, y, ...)`` of equally long arrays.

    Sizes as Keras takes them: an int counts rows, a float is a fraction (rounded), None is the rest.
    ``shuffle`` permutes the rows first with Python's ``random.Random(seed)``, the order Keras' shuffle
    gives for that seed (without touching the global generator, which Keras reseeds); ``seed=None`` draws
    one. ``preferred_backend`` takes None or "numpy": the halves are NumPy arrays, never framework datasets.
    """
    if preferred_backend not in (None, "numpy"):
        raise ValueError(f"split_dataset(preferred_backend): mlp_gpu returns NumPy arrays; expected None or "
                         f"'numpy', got {preferred_backend!r}")
    is_tuple = isinstance(dataset, (tuple, list))
    arrays = [np.asarray(a) for a in dataset] if is_tuple else [dataset]
    if not is_tuple and not isinstance(dataset, np.ndarray):
        raise TypeError(f"split_dataset(dataset): expected a NumPy array or a tuple/list of arrays, got "
                        f"{type(dataset).__name__}")
    if not arrays or any(a.ndim == 0 for a in arrays):
        raise ValueError("split_dataset(dataset): expected arrays with a first (row) axis")
    total = len(arrays[0])
    if any(len(a) != total for a in arrays):
        raise ValueError(f"split_dataset(dataset): the arrays differ in length: {[len(a) for a in arrays]}")
    if left_size is None and right_size is None:
        raise ValueError("split_dataset: at least one of left_size and right_size must be given")
    if type(left_size) is float and type(right_size) is float and left_size + right_size > 1:
        raise ValueError(f"split_dataset: left_size + right_size = {left_size + right_size} is more than 1")
    left, right = _split_size(left_size, "left_size", total), _split_size(right_size, "right_size", total)
    left = total - right if left is None else left
    right = total - left if right is None else right
    if left + right > total:
        raise ValueError(f"split_dataset: left_size + right_size = {left + right} rows is more than the "
                         f"{total} rows of the dataset")
    if left == 0 or right == 0:
        raise ValueError(f"split_dataset: with {total} rows, left_size={left_size} and right_size={right_size} "
                         f"leave the {'left' if left == 0 else 'right'} side empty")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"split_dataset(seed): expected an int or None, got {seed!r}")
    order = list(range(total))
    if shuffle:
        random.Random(random.randint(0, int(1e6)) if seed is None else seed).shuffle(order)
    order = np.asarray(order, np.int64)
    halves = [tuple(a[rows] for a in arrays) for rows in (order[:left], order[total - right:])]
    return tuple(halves) if is_tuple else (halves[0][0], halves[1][0])


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


# Keras' global dictionary of custom objects (``get_custom_objects()`` hands out this very dict, which code
# may fill by hand) and the names register_keras_serializable gave to objects.
_registered: dict[str, object] = {}
_registered_names: dict[object, str] = {}


def get_custom_objects() -> dict:
    """Keras' live global dictionary of custom objects: ``get_custom_objects()["my_fn"] = my_fn`` makes a
    name resolvable everywhere a config names something by string, as a custom_object_scope does in a block."""
    return _registered


def register_keras_serializable(package="Custom", name=None):
    """Keras' decorator: register a class (which needs ``get_config``) or function under ``"package>name"``
    (``name`` defaults to its ``__name__``), so that a saved config naming it loads without custom_objects."""
    if not isinstance(package, str) or (name is not None and not isinstance(name, str)):
        raise TypeError(f"register_keras_serializable: expected str package and name, got {package!r}, {name!r}")

    def decorator(arg):
        if not callable(arg):
            raise TypeError(f"register_keras_serializable: expected a class or function, got {type(arg).__name__}")
        if isinstance(arg, type) and not hasattr(arg, "get_config"):
            raise ValueError("Cannot register a class that does not have a get_config() method.")
        registered = f"{package}>{name if name is not None else arg.__name__}"
        _registered[registered] = arg
        _registered_names[arg] = registered
        return arg

    return decorator


def get_registered_name(obj) -> str:
    """The name register_keras_serializable gave ``obj``, else its ``__name__``."""
    try:
        return _registered_names[obj]
    except (KeyError, TypeError):
        return obj.__name__


def get_custom_object(name: str):
    """The object named ``name`` by an enclosing custom_object_scope (innermost first) or in the global
    dictionary of custom objects (register_keras_serializable, get_custom_objects()), or None."""
    for scope in reversed(_custom_scopes):
        if name in scope:
            return scope[name]
    return _registered.get(name)


def clear_session(free_memory: bool = True) -> None:
    """``keras.utils.clear_session`` (also ``mlp_gpu.backend.clear_session``, for ``keras.backend``'s)."""
    backend.clear_session(free_memory)
