"""Layers. A Dense layer holds views into the model's flat parameter and gradient buffers."""
from __future__ import annotations

import numpy as np

from . import initializers
from ._checks import check_int
from .backend.base import ACTIVATIONS


def check_activation(activation) -> str:
    name = "linear" if activation is None else activation
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {list(ACTIVATIONS)} or None, got {activation!r}")
    return name


def _check_shape(shape, arg):
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"{arg}: expected a tuple of positive ints, got {shape!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"{arg}: expected a tuple of positive ints, got {shape!r}")
    return shape


class Layer:
    """A step of the network. Shape-only layers (Input, Flatten) have no parameters."""

    def __init__(self, name: str | None = None):
        self.name = name

    def param_shapes(self) -> list[tuple[int, ...]]:
        return []

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def get_config(self) -> dict:
        return {"name": self.name}


class Input(Layer):
    """Declares the shape of one sample, e.g. ``Input(shape=(28, 28))``."""

    def __init__(self, shape, name: str | None = None):
        super().__init__(name)
        self.shape = _check_shape(shape, "Input(shape)")

    def get_config(self) -> dict:
        return {**super().get_config(), "shape": list(self.shape)}


class Flatten(Layer):
    """Flattens each sample to a vector (28×28 → 784). Free: a reshape of the input."""

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)


class Dense(Layer):
    """``y = activation(x @ kernel + bias)``, kernel stored (inputs, units) as in Keras."""

    def __init__(self, units: int, activation=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", input_shape=None, name: str | None = None):
        super().__init__(name)
        self.units = check_int(units, "Dense(units)", 1)
        self.activation = check_activation(activation)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._kernel_init = initializers.get(kernel_initializer)
        self._bias_init = initializers.get(bias_initializer)
        self.input_shape = None if input_shape is None else _check_shape(input_shape, "Dense(input_shape)")
        self.input_dim: int | None = None
        self.kernel = self.bias = self.kernel_grad = self.bias_grad = None

    def output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Dense layer {self.name!r} needs flat inputs, got shape {input_shape}; "
                             "put a Flatten() before it")
        self.input_dim = int(input_shape[0])
        return (self.units,)

    def param_shapes(self):
        return [(self.input_dim, self.units), (self.units,)]

    def initial_values(self, rng) -> list[np.ndarray]:
        kernel_shape, bias_shape = self.param_shapes()
        return [self._kernel_init(kernel_shape, rng), self._bias_init(bias_shape, rng)]

    def bind(self, params: list, grads: list) -> None:
        """Point the layer at its views of the model's flat buffers."""
        self.kernel, self.bias = params
        self.kernel_grad, self.bias_grad = grads

    def forward(self, backend, x, out, activation: str) -> None:
        """out <- activation(x @ kernel + bias)."""
        backend.matmul(x, self.kernel, out=out)
        backend.bias_act(out, self.bias, activation)

    def backward(self, backend, x, dz, dx) -> None:
        """Given dz = dL/d(pre-activation): fill the kernel and bias gradients and dx (if not None)."""
        backend.matmul(x, dz, out=self.kernel_grad, trans_a=True)
        backend.bias_grad(dz, self.bias_grad)
        if dx is not None:
            backend.matmul(dz, self.kernel, out=dx, trans_b=True)

    def get_config(self) -> dict:
        cfg = {**super().get_config(), "units": self.units, "activation": self.activation}
        for key in ("kernel_initializer", "bias_initializer"):
            value = getattr(self, key)
            cfg[key] = value if isinstance(value, str) else getattr(value, "__name__", "custom")
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        return cfg


LAYER_CLASSES = {cls.__name__: cls for cls in (Input, Flatten, Dense)}
# The schema of a saved layer config: which keys each class takes (constructors check the values).
CONFIG_KEYS = {"Input": {"name", "shape"}, "Flatten": {"name"},
               "Dense": {"name", "units", "activation", "kernel_initializer", "bias_initializer", "input_shape"}}


def layer_from_config(class_name: str, config: dict) -> Layer:
    """Rebuild a layer from ``get_config()`` output; only known classes and keys are accepted."""
    if class_name not in LAYER_CLASSES:
        raise ValueError(f"layer class: expected one of {sorted(LAYER_CLASSES)}, got {class_name!r}")
    unknown = set(config) - CONFIG_KEYS[class_name]
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
