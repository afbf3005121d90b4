"""Layers and the protocol every layer follows; a layer holds views into the model's flat buffers."""
from __future__ import annotations

import numpy as np

from .. import activations
from .._checks import check_int


def check_activation(activation) -> str:
    """The table name of an activation given as Keras takes it (a name, an entry of the table, or None)."""
    return activations.get(activation).name


def _check_shape(shape, arg):
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{arg}: expected a tuple of positive ints, got {shape!r}")
    dims = tuple(shape)  # no int() on each: it would read "28" or truncate 28.5 without a word
    if not dims or any(isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d <= 0
                       for d in dims):
        raise ValueError(f"{arg}: expected a tuple of positive ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def _first_layer_shape(owner, input_shape, input_dim):
    """Keras' ``input_shape=``/``input_dim=`` on a first layer: the shape of one sample, or None."""
    if input_shape is not None and input_dim is not None:
        raise ValueError(f"{owner}: give input_shape or input_dim, not both")
    if input_dim is not None:
        return (check_int(input_dim, f"{owner}(input_dim)", 1),)
    return None if input_shape is None else _check_shape(input_shape, f"{owner}(input_shape)")


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


LAYER_CLASSES: dict[str, type] = {}  # every Layer subclass by name, for configs read from files


class Variable:
    """One weight of a built layer as Keras shows it (``model.weights``, ``layer.trainable_weights``):
    ``numpy()`` a host copy, ``assign(value)`` writes it, ``value`` the device view, ``shape``, ``dtype``,
    ``name`` ("kernel") and ``path`` ("dense/kernel"). It reads the layer's view at each use."""

    def __init__(self, layer: "Layer", index: int, trainable: bool):
        self._layer, self._index, self.trainable = layer, index, trainable
        self.name = layer.weight_names()[index]
        self.path = f"{layer.name}/{self.name}"

    @property
    def value(self):
        return self._layer.weight_views[self._index]

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


class Layer:
    """A step of the network, run by the model through one protocol:

    - ``output_shape(input_shape)`` fixes shapes at build time;
    - ``param_shapes()`` / ``state_shapes()`` list its trainable and non-trainable weights,
      ``weight_names()`` names both in Keras' order (trainable first);
    - ``bind(backend, params, grads, state)`` points it at its views of the model's flat parameter,
      gradient and state buffers (the optimizer touches only the first);
    - ``buffers()`` asks the workspace for per-batch scratch (``{name: (shape, per_row)}``);
    - ``forward(backend, x, out, training, aux)`` and ``backward(backend, x, y, dy, dx, aux)``
      run it on (rows, features) batches; backward may overwrite dy and fills its gradients.

    Shape-only layers (Input, Flatten) set ``computes = False``: every batch is already flat.
    As in Keras, the first layer may declare the sample shape: ``Flatten(input_shape=[28, 28])``,
    ``Dense(4, input_dim=8)``. ``get_weights``/``set_weights`` read and write the layer's share of
    the model's flat buffers once the model is built.
    """

    computes = True
    config_keys = frozenset({"name", "input_shape"})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("mlp_gpu."):  # files name only our own classes
            LAYER_CLASSES[cls.__name__] = cls

    def __init__(self, name: str | None = None, input_shape=None, input_dim=None):
        if name is not None and (not isinstance(name, str) or "/" in name or not name):
            raise ValueError(f"{type(self).__name__}(name): expected a non-empty string without '/' (Keras' rule), "
                             f"got {name!r}")
        self.name = name
        self.input_shape = _first_layer_shape(type(self).__name__, input_shape, input_dim)
        self.backend = None  # the model's, once built
        self.params, self.grads, self.state = [], [], []

    def param_shapes(self) -> list[tuple[int, ...]]:
        return []

    def state_shapes(self) -> list[tuple[int, ...]]:
        return []

    def weight_names(self) -> list[str]:
        return []

    def initial_values(self, rng) -> list[np.ndarray]:
        return []

    def initial_state(self) -> list[np.ndarray]:
        return []

    def bind(self, backend, params: list, grads: list, state: list) -> None:
        """Point the layer at its views of the model's flat buffers."""
        self.backend = backend
        self.params, self.grads, self.state = params, grads, state

    @property
    def weight_views(self) -> list:
        """Device views of the weights named by ``weight_names()``, Keras' order (trainable first);
        empty before the model is built."""
        return (self.params + self.state)[:len(self.weight_names())]

    # Keras' variable lists: Variable objects over the views (numpy(), assign(), shape, path ...).
    @property
    def weights(self) -> list:
        return [Variable(self, i, trainable=i < len(self.params)) for i in range(len(self.weight_views))]

    @property
    def trainable_weights(self) -> list:
        return [v for v in self.weights if v.trainable]

    @property
    def non_trainable_weights(self) -> list:
        return [v for v in self.weights if not v.trainable]

    variables, trainable_variables, non_trainable_variables = weights, trainable_weights, non_trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        """Host copies of the weights, as Keras returns them."""
        return [self.backend.to_host(w) for w in self.weight_views]

    def set_weights(self, weights) -> None:
        """Write host arrays into the layer's weights (shapes and finiteness checked first)."""
        if self.backend is None:
            raise RuntimeError(f"layer {self.name!r}: set_weights needs a built model; build or compile it first")
        write_weights(self.backend, self.weight_views, weights)

    def buffers(self) -> dict:
        return {}

    def regularized(self) -> list:
        """(weight view, gradient view, Regularizer) for each regularized weight."""
        return []

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def forward(self, backend, x, out, training=False, aux=None) -> None:
        raise NotImplementedError

    def backward(self, backend, x, y, dy, dx, aux=None) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        cfg = {"name": self.name}
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        return cfg


def flat_features(layer, input_shape) -> int:
    """The feature count of a flat input, or an error naming the layer."""
    if len(input_shape) != 1:
        raise ValueError(f"{type(layer).__name__} layer {layer.name!r} needs flat inputs, got shape "
                         f"{tuple(input_shape)}; put a Flatten() before it")
    return int(input_shape[0])


def layer_from_config(class_name: str, config: dict) -> Layer:
    """Rebuild a layer from ``get_config()`` output; only known classes and keys are accepted."""
    if class_name not in LAYER_CLASSES:
        raise ValueError(f"layer class: expected one of {sorted(LAYER_CLASSES)}, got {class_name!r}")
    unknown = set(config) - LAYER_CLASSES[class_name].config_keys
    if unknown:
        raise ValueError(f"layer config for {class_name}: unknown keys {sorted(unknown)}")
    if not isinstance(config.get("name"), (str, type(None))):
        raise ValueError(f"layer config for {class_name}: name must be a string, got {config.get('name')!r}")
    cfg = dict(config)
    if class_name == "Dense" and cfg.get("kernel_initializer") == "custom":
        cfg["kernel_initializer"] = "glorot_uniform"
    if class_name == "Dense" and cfg.get("bias_initializer") == "custom":
        cfg["bias_initializer"] = "zeros"
    try:
        return LAYER_CLASSES[class_name](**cfg)
    except TypeError as exc:
        raise ValueError(f"layer config for {class_name}: {exc}") from None
