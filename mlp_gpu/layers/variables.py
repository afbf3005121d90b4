"""A layer's weights as Keras shows them (``Variable``), the checked writes into them, and the weights
a layer declares with Keras' ``add_weight`` (``AddedWeight``) before the model lays them out."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import constraints, initializers, regularizers
from .._checks import check_bool

FLOAT32 = "float32"  # the one dtype of every layer's weights and computations
AGGREGATIONS = (None, "none", "mean", "sum", "only_first_replica")  # Keras' add_weight(aggregation)


def check_dtype(dtype, arg: str) -> str:
    """Keras' dtype argument (None, a name, a NumPy dtype or a DTypePolicy config): 'float32' only."""
    if isinstance(dtype, dict) and isinstance(dtype.get("config"), dict):  # Keras' serialized DTypePolicy
        dtype = dtype["config"].get("name")
    if dtype is None:
        return FLOAT32
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name != FLOAT32:
        raise ValueError(f"{arg}: layers compute in float32 only, got dtype={dtype!r} (a model's dtype= chooses "
                         "float64 on the numpy backend)")
    return FLOAT32


def check_weights(targets, weights, what="weights") -> list[np.ndarray]:
    """Host arrays for ``targets`` (device views), checked all before any is written."""
    if not isinstance(weights, (list, tuple)) or len(weights) != len(targets):
        got = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
        raise ValueError(f"{what}: expected {len(targets)} arrays, got {got}")
    arrays = []
    for i, (t, w) in enumerate(zip(targets, weights)):
        w = np.asarray(w)
        if w.dtype.kind not in "biuf":  # complex would lose its imaginary part; text is no number
            raise ValueError(f"{what}[{i}]: expected an array of real numbers, got dtype {w.dtype}")
        if w.shape != tuple(t.shape):
            raise ValueError(f"{what}[{i}]: expected shape {tuple(t.shape)}, got {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{what}[{i}]: contains NaN or infinity")
        arrays.append(w)
    return arrays


def write_weights(backend, targets, weights, what="weights") -> None:
    """Write host arrays into device views, every one checked (check_weights) before any is written."""
    for t, w in zip(targets, check_weights(targets, weights, what)):
        t[...] = backend.asarray(np.asarray(w, t.dtype))


class Variable:
    """One weight of a built layer as Keras shows it (``model.weights``, ``layer.trainable_weights``):
    ``numpy()`` a host copy, ``assign(value)`` writes it, ``value`` the device view, ``shape``, ``dtype``,
    ``name`` ("kernel") and ``path`` ("dense/kernel"). It reads the layer's view at each use."""

    def __init__(self, layer, index: int, trainable: bool):
        self._layer, self._index, self.trainable = layer, index, trainable
        self.name = layer.weight_names()[index]
        self.path = f"{layer.name}/{self.name}"

    @property
    def value(self):
        views = self._layer.weight_views
        if self._index >= len(views):
            raise RuntimeError(f"weight {self.path!r}: its layer is not in a built model yet, so the weight has no "
                               "value; build the model (or call it on data) first")
        return views[self._index]

    @property
    def shape(self) -> tuple:
        return tuple(self.value.shape)

    @property
    def dtype(self) -> str:
        return np.dtype(self.value.dtype).name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numpy(self) -> np.ndarray:
        return self._layer.backend.to_host(self.value)

    def __array__(self, dtype=None, copy=None):
        return self.numpy() if dtype is None else self.numpy().astype(dtype)

    def assign(self, value) -> None:
        write_weights(self._layer.backend, [self.value], [value], what=f"{self.path}.assign")

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}>"


@dataclass
class AddedWeight:
    """A weight declared by ``Layer.add_weight``: what the model needs to lay it out and draw it."""
    name: str
    shape: tuple
    initializer: object
    trainable: bool
    regularizer: object
    constraint: object


class AddedVariable(Variable):
    """What ``add_weight`` returns: a Variable found by its declaration, so its place among the layer's
    weights (trainable first, as in Keras) may change while more are added."""

    def __init__(self, layer, spec: AddedWeight):
        self._layer, self._spec, self.name = layer, spec, spec.name
        self.path = f"{layer.name}/{spec.name}"

    @property
    def trainable(self) -> bool:
        return self._spec.trainable and self._layer.trainable

    @property
    def _index(self) -> int:
        return self._layer.weight_names().index(self._spec.name)

    @property
    def shape(self) -> tuple:
        return tuple(self._spec.shape)


def _shape(shape, arg) -> tuple:
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{arg}: expected a tuple of positive ints, got {shape!r}")
    dims = tuple(shape)
    if any(isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d <= 0 for d in dims):
        raise ValueError(f"{arg}: expected a fully defined tuple of positive ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def added_weight(layer, args, shape, initializer, dtype, trainable, autocast, regularizer, constraint,
                 aggregation, overwrite_with_gradient, name) -> AddedWeight:
    """Keras' add_weight arguments checked into an AddedWeight (the legacy positional form included)."""
    what = f"{type(layer).__name__}.add_weight"
    if args:  # Keras keeps *args for Keras 2's add_weight(shape, initializer, dtype)
        if len(args) > 3:
            raise TypeError(f"{what}() takes at most 3 positional arguments but {len(args)} were given")
        if isinstance(args[0], str):
            raise ValueError(f"{what}: `name` must be passed as a keyword argument, got add_weight({args[0]!r}, ...); "
                             f"use add_weight(shape=..., name={args[0]!r})")
        for i, (key, value) in enumerate((("shape", shape), ("initializer", initializer), ("dtype", dtype))):
            if i < len(args) and value is not None:
                raise ValueError(f"{what}: `{key}` was passed both positionally and as a keyword argument")
        shape, initializer, dtype = (list(args) + [shape, initializer, dtype][len(args):])[:3]
    shape = () if shape is None else _shape(shape, f"{what}(shape)")
    check_dtype(dtype, f"{what}(dtype)")
    check_bool(autocast, f"{what}(autocast)")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"{what}(aggregation): expected one of {list(AGGREGATIONS)}, got {aggregation!r}")
    if overwrite_with_gradient is not False:
        raise ValueError(f"{what}(overwrite_with_gradient): only False is supported (Keras uses it for float8 "
                         f"training), got {overwrite_with_gradient!r}")
    taken = [w.name for w in layer._added]
    if name is None:
        name = "variable" if "variable" not in taken else f"variable_{len(taken)}"
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"{what}(name): expected a non-empty string without '/', got {name!r}")
    if name in taken:
        raise ValueError(f"{what}(name): the layer already has a weight named {name!r}")
    return AddedWeight(name, shape, initializers.get("glorot_uniform" if initializer is None else initializer),
                       check_bool(trainable, f"{what}(trainable)"), regularizers.get(regularizer),
                       constraints.get(constraint))
