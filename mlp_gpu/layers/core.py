"""The core layers: ``Input`` (and Keras' ``InputLayer``), ``Flatten`` and ``Dense``."""
from __future__ import annotations

import numpy as np

from .. import activations, initializers, regularizers
from .._checks import check_int
from ..tracing import describe, function_name, trace_map
from ..utils import get_custom_object
from .node import Node
from .base import Layer, _check_shape, check_activation, flat_features


class Input(Layer):
    """Declares the shape of one sample, e.g. ``Input(shape=(28, 28))``."""

    computes = False
    config_keys = frozenset({"name", "shape"})

    def __init__(self, shape, name: str | None = None):
        super().__init__(name)
        self.shape = _check_shape(shape, "Input(shape)")
        # The source of a functional graph: layers called on this Input take this tensor.
        self.output = Node(self, [], self.shape).output

    def __call__(self, *args, **kwargs):
        raise TypeError("an Input is the start of a graph, not a layer to call: pass it to a layer, "
                        "e.g. Dense(10)(Input(shape=(8,)))")

    def get_config(self) -> dict:
        return {"name": self.name, "shape": list(self.shape)}


class InputLayer(Input):
    """Keras' InputLayer: ``InputLayer(shape=[28, 28])`` or the older ``InputLayer(input_shape=[28, 28])``."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name: str | None = None, input_shape=None,
                 batch_shape=None):
        if batch_shape is not None and shape is None and input_shape is None:
            shape = tuple(batch_shape)[1:]
        if shape is not None and input_shape is not None:
            raise ValueError("InputLayer: give shape or input_shape, not both")
        shape = input_shape if shape is None else shape
        if shape is None:
            raise ValueError("InputLayer: expected shape=(...) (or input_shape=) for one sample")
        super().__init__(shape, name)


class Flatten(Layer):
    """Flattens each sample to a vector (28×28 → 784). Free: a reshape of the input."""

    computes = False

    def __init__(self, data_format=None, name: str | None = None, input_shape=None, input_dim=None):
        super().__init__(name, input_shape, input_dim)

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)


def traced_activation(activation):
    """The Python function of a custom activation (given, or named by a file and found in load_model's
    custom_objects), else None for a built-in name."""
    if isinstance(activation, str) and activation not in activations.ACTIVATIONS | activations.ALIASES:
        custom = get_custom_object(activation)
        if custom is None:
            raise ValueError(f"activation: expected one of {list(activations.ACTIVATIONS)} or None, got "
                             f"{activation!r} (a custom activation named in a model file needs load_model(path, "
                             f"custom_objects={{{activation!r}: fn}}); a file never holds its code)")
        return custom
    if callable(activation) and not isinstance(activation, (str, activations.Activation)):  # entries are callable
        return activation
    return None


class Dense(Layer):
    """``y = activation(x @ kernel + bias)``, kernel stored (inputs, units) as in Keras."""

    config_keys = frozenset({"name", "units", "activation", "kernel_initializer", "bias_initializer",
                             "kernel_regularizer", "bias_regularizer", "input_shape"})

    def __init__(self, units: int, activation=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 input_shape=None, name: str | None = None, input_dim=None):
        super().__init__(name, input_shape, input_dim)
        self.units = check_int(units, "Dense(units)", 1)
        # a Python activation (Géron's my_softplus) is traced at build; self.activation then holds its name,
        # which no fused op knows, so a route that cannot run it fails by name instead of skipping it
        self.activation_fn = traced_activation(activation)
        self.activation = function_name(self.activation_fn) if self.activation_fn else check_activation(activation)
        self._act_forward = self._act_backward = None
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._kernel_init = initializers.get(kernel_initializer)
        self._bias_init = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.input_dim: int | None = None
        self.kernel = self.bias = self.kernel_grad = self.bias_grad = None

    def output_shape(self, input_shape):
        self.input_dim = flat_features(self, input_shape)
        if self.activation_fn is not None:
            label = f"Dense {self.name!r} activation {describe(self.activation_fn)}"
            self._act_forward, self._act_backward, cols = trace_map(self.activation_fn, self.units, label)
            if cols != self.units:
                raise ValueError(f"{label}: an activation maps each output to one value; it gives {cols} columns")
        return (self.units,)

    def buffers(self):
        # a traced activation keeps its input (the pre-activation) and the gradient at it
        if self.activation_fn:
            return {"pre": ((self.units,), True), "dpre": ((self.units,), True)}
        # gelu, silu ...: the gradient reads the pre-activation (the output cannot tell it)
        return {"pre": ((self.units,), True)} if activations.get(self.activation).from_input else {}

    def param_shapes(self):
        return [(self.input_dim, self.units), (self.units,)]

    def weight_names(self):
        return ["kernel", "bias"]

    def initial_values(self, rng) -> list[np.ndarray]:
        kernel_shape, bias_shape = self.param_shapes()
        return [self._kernel_init(kernel_shape, rng), self._bias_init(bias_shape, rng)]

    def bind(self, backend, params, grads, state):
        super().bind(backend, params, grads, state)
        self.kernel, self.bias = params
        self.kernel_grad, self.bias_grad = grads

    def regularized(self):
        pairs = ((self.kernel, self.kernel_grad, self.kernel_regularizer),
                 (self.bias, self.bias_grad, self.bias_regularizer))
        return [p for p in pairs if p[2] is not None]

    def forward(self, backend, x, out, training=False, aux=None, activation=None) -> None:
        """out <- activation(x @ kernel + bias); ``activation`` overrides the layer's (a fused loss)."""
        if self.activation_fn is not None:  # applied even under a fused loss: it is part of the layer
            backend.matmul(x, self.kernel, out=aux["pre"])
            backend.bias_act(aux["pre"], self.bias, "linear")
            backend.run_traced(self._act_forward, {"x": aux["pre"], "y": out})
            return
        act = self.activation if activation is None else activation
        if activations.get(act).from_input:  # keep z = x @ kernel + bias for backward
            backend.matmul(x, self.kernel, out=aux["pre"])
            backend.xp.copyto(out, aux["pre"])
            backend.bias_act(out, self.bias, act)
            backend.bias_act(aux["pre"], self.bias, "linear")
            return
        backend.matmul(x, self.kernel, out=out)
        backend.bias_act(out, self.bias, act)

    def backward(self, backend, x, y, dy, dx, aux=None, activation=None) -> None:
        """dy (dL/dy, overwritten) -> kernel and bias gradients and dx (if not None).

        ``activation="linear"`` when dy is already dL/d(pre-activation) (a fused loss)."""
        if self.activation_fn is not None:
            backend.run_traced(self._act_backward, {"x": aux["pre"], "dy": dy, "dx": aux["dpre"]})
            dy = aux["dpre"]
        else:
            act = self.activation if activation is None else activation
            backend.act_backward(dy, aux["pre"] if activations.get(act).from_input else y, act)
        backend.matmul(x, dy, out=self.kernel_grad, trans_a=True)
        backend.bias_grad(dy, self.bias_grad)
        if dx is not None:
            backend.matmul(dy, self.kernel, out=dx, trans_b=True)

    def get_config(self) -> dict:
        cfg = {**super().get_config(), "units": self.units, "activation": self.activation}
        for key in ("kernel_initializer", "bias_initializer"):
            value = getattr(self, key)
            cfg[key] = value if isinstance(value, str) else getattr(value, "__name__", "custom")
        for key in ("kernel_regularizer", "bias_regularizer"):
            if getattr(self, key) is not None:
                cfg[key] = regularizers.serialize(getattr(self, key))
        return cfg
