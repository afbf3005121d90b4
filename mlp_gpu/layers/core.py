"""The core layers: ``Input`` (and Keras' ``InputLayer``), ``Flatten`` and ``Dense``."""
from __future__ import annotations

import numpy as np

from .. import activations, constraints, initializers, regularizers
from .._checks import check_bool, check_int
from ..tracing import describe, function_name, trace_map
from ..utils import get_custom_object
from .node import Node
from .base import Layer, _check_shape, check_activation, flat_features


def _refuse(what, arg, value, expected):
    raise ValueError(f"{what}({arg}): mlp_gpu takes dense float32 samples; expected {expected}, got {value!r}")


def _sample_shape(what, shape, batch_size, batch_shape):
    """One sample's shape from Keras' shape= (no batch) or batch_shape= (batch first)."""
    if shape is not None and batch_shape is not None:
        raise ValueError(f"{what}: you cannot pass both `shape` and `batch_shape` at the same time")
    if batch_size is not None and batch_shape is not None:
        raise ValueError(f"{what}: you cannot pass both `batch_size` and `batch_shape` at the same time")
    if shape is None and batch_shape is None:
        raise ValueError(f"{what}: you must pass a `shape` argument (one sample's shape, e.g. shape=(28, 28))")
    if batch_size is not None:
        check_int(batch_size, f"{what}(batch_size)", 1)
    if batch_shape is None:
        return _check_shape(shape, f"{what}(shape)"), batch_size
    if isinstance(batch_shape, (str, bytes)) or not hasattr(batch_shape, "__iter__") or len(tuple(batch_shape)) < 2:
        raise ValueError(f"{what}(batch_shape): expected (batch, *sample shape), e.g. (None, 784), got {batch_shape!r}")
    batch, *sample = tuple(batch_shape)
    if batch is not None:
        check_int(batch, f"{what}(batch_shape[0])", 1)
    return _check_shape(sample, f"{what}(batch_shape[1:])"), batch


class Input(Layer):
    """Declares the shape of one sample, e.g. ``Input(shape=(28, 28))`` or ``Input(batch_shape=(None, 784))``:
    Keras' arguments; the batch size is fit's. Sparse, ragged, given tensors and optional inputs are refused."""

    computes = False
    config_keys = frozenset({"name", "shape"})

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None,
                 name=None, tensor=None, optional=False):
        what = type(self).__name__
        super().__init__(dtype=dtype, name=name)
        for arg, value in (("sparse", sparse), ("ragged", ragged)):
            if value not in (None, False):
                _refuse(what, arg, value, "None or False")
        if tensor is not None:
            _refuse(what, "tensor", type(tensor).__name__, "None (an Input makes its own symbolic tensor)")
        if optional is not False:
            _refuse(what, "optional", optional, "False (every input takes data)")
        self.shape, self.batch_size = _sample_shape(what, shape, batch_size, batch_shape)
        # The source of a functional graph: layers called on this Input take this tensor.
        self.output = Node(self, [], self.shape).output

    @property
    def batch_shape(self) -> tuple:
        return (self.batch_size, *self.shape)

    def __call__(self, *args, **kwargs):
        raise TypeError("an Input is the start of a graph, not a layer to call: pass it to a layer, "
                        "e.g. Dense(10)(Input(shape=(8,)))")

    def get_config(self) -> dict:
        return {"name": self.name, "shape": list(self.shape)}


class InputLayer(Input):
    """Keras' InputLayer: ``InputLayer(shape=[28, 28])``, ``InputLayer(batch_shape=(None, 784))`` or the
    older ``input_shape=``/``batch_input_shape=`` keywords."""

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None,
                 input_tensor=None, optional=False, name=None, **kwargs):
        if "input_shape" in kwargs:  # Keras' deprecated spelling
            if shape is not None:
                raise ValueError("InputLayer: give shape or input_shape, not both")
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to InputLayer: {kwargs}")
        super().__init__(shape, batch_size, dtype, sparse, ragged, batch_shape, name, input_tensor, optional)


class Flatten(Layer):
    """Flattens each sample to a vector (28×28 → 784). Free: a reshape of the input."""

    computes = False

    def __init__(self, data_format=None, **kwargs):
        if data_format not in (None, "channels_last"):  # channels_first would move an axis: not a free reshape
            raise ValueError(f"Flatten(data_format): expected None or 'channels_last', got {data_format!r}")
        super().__init__(**kwargs)
        self.data_format = data_format

    config_keys = frozenset({"name", "input_shape", "data_format"})

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format}


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
    """``y = activation(x @ kernel + bias)``, kernel stored (inputs, units) as in Keras; ``use_bias=False``
    has no bias weight at all (its forward adds a constant zero vector, no kernel of its own)."""

    config_keys = frozenset({"name", "units", "activation", "use_bias", "kernel_initializer", "bias_initializer",
                             "kernel_regularizer", "bias_regularizer", "kernel_constraint", "bias_constraint",
                             "quantization_config", "input_shape"})

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, lora_alpha=None,
                 quantization_config=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = check_int(units, "Dense(units)", 1)
        if isinstance(use_bias, str):  # Keras 2's Dense(units, activation, kernel_initializer) order
            raise TypeError(f"Dense(use_bias): expected a bool, got {use_bias!r}; the third argument is use_bias "
                            "in Keras 3 (units, activation, use_bias, kernel_initializer, ...): pass initializers "
                            "by keyword")
        self.use_bias = check_bool(use_bias, "Dense(use_bias)")
        for arg, value in (("lora_rank", lora_rank), ("lora_alpha", lora_alpha),
                           ("quantization_config", quantization_config)):
            if value is not None:
                raise ValueError(f"Dense({arg}): LoRA and quantization are not supported (only None), got {value!r}")
        self.lora_rank = self.lora_alpha = self.quantization_config = None
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
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_dim: int | None = None
        self.kernel = self.bias = self.kernel_grad = self.bias_grad = None
        self._zero_bias = None  # use_bias=False: the constant zeros the fused bias+activation op adds

    def output_shape(self, input_shape):
        self.input_dim = flat_features(self, input_shape)
        if self.activation_fn is not None:
            label = f"Dense {self.name!r} activation {describe(self.activation_fn)}"
            self._act_forward, self._act_backward, cols = trace_map(self.activation_fn, self.units, label)
            if cols != self.units:
                raise ValueError(f"{label}: an activation maps each output to one value; it gives {cols} columns")
        return (self.units,)

    def compute_output_shape(self, *args, **kwargs):
        """Keras' rule, on the last axis: ``(..., features)`` -> ``(..., units)``."""
        shape = tuple(args[0] if args else kwargs.get("input_shape", ()))
        if len(args) + len(kwargs) != 1 or len(shape) < 2:
            raise TypeError(f"Dense.compute_output_shape: expected one batch shape like (None, features), got "
                            f"args={args!r}, kwargs={kwargs!r}")
        return (*shape[:-1], self.units)

    def buffers(self):
        # a traced activation keeps its input (the pre-activation) and the gradient at it
        if self.activation_fn:
            return {"pre": ((self.units,), True), "dpre": ((self.units,), True)}
        # gelu, silu ...: the gradient reads the pre-activation (the output cannot tell it)
        return {"pre": ((self.units,), True)} if activations.get(self.activation).from_input else {}

    def param_shapes(self):
        return [(self.input_dim, self.units)] + ([(self.units,)] if self.use_bias else [])

    def weight_names(self):
        return ["kernel", "bias"] if self.use_bias else ["kernel"]

    def initial_values(self, rng) -> list[np.ndarray]:
        shapes = self.param_shapes()
        values = [self._kernel_init(shapes[0], rng)]
        return values + [self._bias_init(shapes[1], rng)] if self.use_bias else values

    def bind(self, backend, params, grads, state):
        super().bind(backend, params, grads, state)
        if self.use_bias:
            self.kernel, self.bias = params
            self.kernel_grad, self.bias_grad = grads
        else:
            (self.kernel,), (self.kernel_grad,) = params, grads
            self._zero_bias = backend.zeros(self.units, self.kernel.dtype)  # made here: never inside a capture

    def regularized(self):
        pairs = [(self.kernel, self.kernel_grad, self.kernel_regularizer)]
        if self.use_bias:
            pairs.append((self.bias, self.bias_grad, self.bias_regularizer))
        return [p for p in pairs if p[2] is not None]

    def constrained(self):
        pairs = [(self.kernel, self.kernel_constraint)] + ([(self.bias, self.bias_constraint)] if self.use_bias else [])
        return [p for p in pairs if p[1] is not None]

    def _bias(self):
        return self.bias if self.use_bias else self._zero_bias

    def forward(self, backend, x, out, training=False, aux=None, activation=None) -> None:
        """out <- activation(x @ kernel + bias); ``activation`` overrides the layer's (a fused loss)."""
        if self.activation_fn is not None:  # applied even under a fused loss: it is part of the layer
            backend.matmul(x, self.kernel, out=aux["pre"])
            backend.bias_act(aux["pre"], self._bias(), "linear")
            backend.run_traced(self._act_forward, {"x": aux["pre"], "y": out})
            return
        act = self.activation if activation is None else activation
        if activations.get(act).from_input:  # keep z = x @ kernel + bias for backward
            backend.matmul(x, self.kernel, out=aux["pre"])
            backend.xp.copyto(out, aux["pre"])
            backend.bias_act(out, self._bias(), act)
            backend.bias_act(aux["pre"], self._bias(), "linear")
            return
        backend.matmul(x, self.kernel, out=out)
        backend.bias_act(out, self._bias(), act)

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
        if self.use_bias:
            backend.bias_grad(dy, self.bias_grad)
        if dx is not None:
            backend.matmul(dy, self.kernel, out=dx, trans_b=True)

    def get_config(self) -> dict:
        cfg = {**super().get_config(), "units": self.units, "activation": self.activation, "use_bias": self.use_bias}
        for key in ("kernel_initializer", "bias_initializer"):
            value = getattr(self, key)
            cfg[key] = value if isinstance(value, str) else getattr(value, "__name__", "custom")
        for key in ("kernel_regularizer", "bias_regularizer"):
            if getattr(self, key) is not None:
                cfg[key] = regularizers.serialize(getattr(self, key))
        for key in ("kernel_constraint", "bias_constraint"):
            if getattr(self, key) is not None:
                cfg[key] = constraints.serialize(getattr(self, key))
        return cfg
