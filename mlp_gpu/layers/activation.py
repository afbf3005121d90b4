"""Keras' activation layers: ``Activation``, ``ReLU``, ``LeakyReLU``, ``PReLU``, ``ELU``, ``Softmax``.

Each maps a (rows, features) batch element-wise (Softmax: over each row), as every computing layer here.
With Keras' default parameters an activation is an entry of the table (mlp_gpu/activations.py): one
generated kernel forward and one backward on the GPU, in-place NumPy on the CPU. Other parameters
(``ReLU(max_value=4)``, ``LeakyReLU(0.3)``, ``ELU(0.5)``)
or a Python function are traced with ``mlp_gpu.ops`` into one kernel each way, as a Lambda is. PReLU's
learned slope is written against ``backend.xp`` on preallocated buffers.
"""
from __future__ import annotations

import numpy as np

from .. import activation_formulas as formulas
from .. import activations, initializers, ops, regularizers
from .._checks import check_number
from ..tracing import describe, function_name, trace_map
from .base import Layer, flat_features
from .lambda_layer import resolve_function

_BASE_KWARGS = ("name", "dtype", "trainable", "input_shape", "input_dim")
KERAS_MODULE = "keras.initializers"


def _base(cls_name: str, kwargs: dict, weights: bool = False) -> dict:
    """Keras' base-layer keywords: name, input_shape, input_dim are kept; dtype must be float32 (the model's);
    trainable=False is refused on a layer with weights (its weights would still train)."""
    unknown = sorted(set(kwargs) - set(_BASE_KWARGS))
    if unknown:
        raise TypeError(f"{cls_name}: unexpected keyword arguments {unknown}; Keras' base keywords here are "
                        f"{list(_BASE_KWARGS)}")
    dtype = kwargs.get("dtype")
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    try:
        wrong = dtype is not None and np.dtype(dtype) != np.float32
    except TypeError:
        wrong = True
    if wrong:
        raise ValueError(f"{cls_name}(dtype): layers compute in the model's dtype; expected None or 'float32', "
                         f"got {kwargs['dtype']!r} (give the model dtype= instead)")
    trainable = kwargs.get("trainable", True)
    if not isinstance(trainable, (bool, np.bool_)):
        raise ValueError(f"{cls_name}(trainable): expected True or False, got {trainable!r}")
    if weights and not trainable:
        raise ValueError(f"{cls_name}(trainable=False): frozen weights are not supported on this layer yet")
    return {k: kwargs.get(k) for k in ("name", "input_shape", "input_dim")}


class _ActivationLayer(Layer):
    """One activation: a table entry (``self.activation``, its name) or a traced function (``self._fn``)."""

    _abstract = True
    config_keys = frozenset({"name", "input_shape", "trainable", "dtype"})

    def __init__(self, kwargs, weights=False):
        super().__init__(**_base(type(self).__name__, kwargs, weights))
        self.trainable = bool(kwargs.get("trainable", True))
        self.activation, self._fn = "linear", None
        self._forward = self._backward = self._zeros = None

    def _use(self, entry_or_fn):
        """A table entry when the parameters are its own, else a function of x to trace at build."""
        if isinstance(entry_or_fn, activations.Activation):
            self.activation = entry_or_fn.name
        else:
            self.activation, self._fn = function_name(entry_or_fn), entry_or_fn

    def output_shape(self, input_shape):
        self.units = flat_features(self, input_shape)  # as every computing layer: (rows, features) batches
        if self._fn is not None:
            label = f"{type(self).__name__} {self.name!r} activation {describe(self._fn)}"
            self._forward, self._backward, cols = trace_map(self._fn, self.units, label)
            if cols != self.units:
                raise ValueError(f"{label}: an activation maps each input to one value; it gives {cols} columns")
        return tuple(input_shape)

    def bind(self, backend, params, grads, state):
        super().bind(backend, params, grads, state)
        self._zeros = backend.zeros((self.units,))  # the bias the fused bias+activation op adds: none

    def forward(self, backend, x, out, training=False, aux=None, activation=None) -> None:
        """out <- f(x). ``activation``: the models' override for an output whose loss applies the activation
        itself; they pass "linear" for every layer but a Dense (models/graph.py output_activation), so here
        it is ignored: f is part of what the loss reads, as in Keras."""
        if self._fn is not None:
            backend.run_traced(self._forward, {"x": x, "y": out})
            return
        backend.xp.copyto(out, x)
        if self.activation != "linear":
            backend.bias_act(out, self._zeros, self.activation)

    def backward(self, backend, x, y, dy, dx, aux=None, activation=None) -> None:
        if dx is None:  # no weights: only the input's gradient
            return
        if self._fn is not None:
            backend.run_traced(self._backward, {"x": x, "dy": dy, "dx": dx})
            return
        act = self.activation  # the override is ignored, as in forward
        backend.act_backward(dy, x if activations.get(act).from_input else y, act)
        backend.xp.copyto(dx, dy)

    def get_config(self) -> dict:
        return {**super().get_config(), "trainable": self.trainable}


class Activation(_ActivationLayer):
    """``Activation(activation, **kwargs)``: a name ("relu", "swish"), an entry of ``mlp_gpu.activations``,
    or a Python function written with ``mlp_gpu.ops`` (traced at build)."""

    config_keys = _ActivationLayer.config_keys | {"activation"}

    def __init__(self, activation, **kwargs):
        super().__init__(kwargs)
        if isinstance(activation, str) and activations.ALIASES.get(activation, activation) not in \
                activations.ACTIVATIONS:
            activation = resolve_function(activation, "Activation(activation)")  # a custom one from a file
        entry = activations.get(activation)
        if not callable(entry):
            raise ValueError(f"Activation(activation): expected a name or a callable, got {activation!r}")
        self._use(entry)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class ReLU(_ActivationLayer):
    """``ReLU(max_value=None, negative_slope=0.0, threshold=0.0, **kwargs)``, Keras' formula."""

    config_keys = _ActivationLayer.config_keys | {"max_value", "negative_slope", "threshold"}

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(kwargs)
        self.max_value = None if max_value is None else check_number(max_value, "ReLU(max_value)", 0)
        self.negative_slope = check_number(negative_slope, "ReLU(negative_slope)", 0)
        self.threshold = check_number(threshold, "ReLU(threshold)", 0)
        if self.negative_slope == 0 and self.threshold == 0 and self.max_value in (None, 6.0):
            self._use(activations.ACTIVATIONS["relu" if self.max_value is None else "relu6"])
        else:
            slope, top, at = self.negative_slope, self.max_value, self.threshold
            self._use(_named(lambda x: formulas.relu(ops, x, slope, top, at), "relu"))

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


class LeakyReLU(_ActivationLayer):
    """``LeakyReLU(negative_slope=0.3, **kwargs)``: x where x > 0, else negative_slope * x."""

    config_keys = _ActivationLayer.config_keys | {"negative_slope"}

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # Keras' older name, which it still reads
            negative_slope = kwargs.pop("alpha")
        super().__init__(kwargs)
        self.negative_slope = check_number(negative_slope, "LeakyReLU(negative_slope)", 0)
        if self.negative_slope == activations.LEAKY_SLOPE:
            self._use(activations.ACTIVATIONS["leaky_relu"])
        else:
            slope = self.negative_slope
            self._use(_named(lambda x: formulas.leaky_relu(ops, x, slope), "leaky_relu"))

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_ActivationLayer):
    """``ELU(alpha=1.0, **kwargs)``: x where x > 0, else alpha (exp(x) - 1)."""

    config_keys = _ActivationLayer.config_keys | {"alpha"}

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(kwargs)
        self.alpha = check_number(alpha, "ELU(alpha)")
        if self.alpha == 1.0:
            self._use(activations.ACTIVATIONS["elu"])
        else:
            alpha = self.alpha
            self._use(_named(lambda x: formulas.elu(ops, x, alpha), "elu"))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(_ActivationLayer):
    """``Softmax(axis=-1, **kwargs)`` over the features of flat samples (axis -1, 1 or [-1])."""

    config_keys = _ActivationLayer.config_keys | {"axis"}

    def __init__(self, axis=-1, **kwargs):
        super().__init__(kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, bool) or axis not in (-1, 1):
            raise ValueError(f"Softmax(axis): only the feature axis of flat samples (-1 or 1), got {axis!r}")
        self.axis = axis
        self._use(activations.ACTIVATIONS["softmax"])

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _named(fn, name):
    fn.__name__ = fn.__qualname__ = name
    return fn


def _initializer_config(init) -> dict:
    """Keras' serialized initializer ({"module", "class_name", "config", "registered_name"})."""
    return {"module": KERAS_MODULE, "class_name": type(init).__name__, "config": init.get_config(),
            "registered_name": None}


def _initializer(value):
    if isinstance(value, dict):  # Keras' serialized form, as get_config writes it
        cls = initializers.INITIALIZERS.get(value.get("class_name"))
        if cls is None:
            raise ValueError(f"PReLU(alpha_initializer): unknown initializer {value.get('class_name')!r}")
        return cls(**dict(value.get("config") or {}))
    return initializers.get(value)


class PReLU(Layer):
    """``PReLU(alpha_initializer='Zeros', alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
    **kwargs)``: max(x, 0) + alpha * min(x, 0), alpha a weight per feature (``shared_axes=[1]``: one for all,
    the sample axis counted from 1 as Keras; samples are flat here)."""

    config_keys = frozenset({"name", "input_shape", "trainable", "dtype", "alpha_initializer",
                             "alpha_regularizer", "alpha_constraint", "shared_axes"})

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
                 **kwargs):
        super().__init__(**_base("PReLU", kwargs, weights=True))
        self.trainable = True
        self.alpha_initializer = _initializer(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if alpha_constraint is not None:
            raise ValueError("PReLU(alpha_constraint): constraints are not supported yet; expected None")
        if shared_axes is not None and not isinstance(shared_axes, (list, tuple)):
            shared_axes = [shared_axes]
        if shared_axes is not None and any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 1
                                           for a in shared_axes):
            raise ValueError(f"PReLU(shared_axes): expected sample axes (ints >= 1), got {shared_axes!r}")
        self.shared_axes = None if shared_axes is None else [int(a) for a in shared_axes]
        self.alpha = self.alpha_grad = None

    def output_shape(self, input_shape):
        flat_features(self, input_shape)
        shape = list(input_shape)
        for axis in self.shared_axes or ():
            if axis > len(shape):
                raise ValueError(f"PReLU layer {self.name!r}(shared_axes): axis {axis} is beyond the sample shape "
                                 f"{tuple(input_shape)}")
            shape[axis - 1] = 1
        self.sample_shape, self.alpha_shape = tuple(input_shape), tuple(shape)
        return tuple(input_shape)

    def param_shapes(self):
        return [self.alpha_shape]

    def weight_names(self):
        return ["alpha"]

    def initial_values(self, rng):
        return [self.alpha_initializer(self.alpha_shape, rng)]

    def bind(self, backend, params, grads, state):
        super().bind(backend, params, grads, state)
        self.alpha, self.alpha_grad = params[0], grads[0]

    def regularized(self):
        return [] if self.alpha_regularizer is None else [(self.alpha, self.alpha_grad, self.alpha_regularizer)]

    def buffers(self):
        return {"s": (self.sample_shape, True)}

    def forward(self, backend, x, out, training=False, aux=None, activation=None) -> None:
        """out <- max(x, 0) + alpha min(x, 0); ``activation`` (a model's output override) is ignored, as above."""
        xp, s = backend.xp, aux["s"]
        xp.minimum(x, 0, out=s)
        xp.multiply(s, self.alpha, out=out)
        xp.maximum(x, 0, out=s)
        out += s

    def backward(self, backend, x, y, dy, dx, aux=None, activation=None) -> None:
        xp, s = backend.xp, aux["s"]
        xp.minimum(x, 0, out=s)
        xp.multiply(s, dy, out=s)  # d out / d alpha = min(x, 0), summed over rows and shared axes
        axes = (0,) + tuple(self.shared_axes or ())
        s.sum(axis=axes, keepdims=True, out=self.alpha_grad.reshape((1,) + self.alpha_shape))
        if dx is None:
            return
        xp.greater(x, 0, out=s)           # 1 where x > 0
        xp.multiply(s, self.alpha, out=dx)
        xp.subtract(s, dx, out=s)         # (1 - alpha) where x > 0, else 0
        s += self.alpha                   # the slope: 1 where x > 0, alpha elsewhere
        xp.multiply(dy, s, out=dx)

    def get_config(self):
        return {**super().get_config(), "trainable": self.trainable,
                "alpha_initializer": _initializer_config(self.alpha_initializer),
                "alpha_regularizer": None if self.alpha_regularizer is None else {
                    "module": "keras.regularizers", **regularizers.serialize(self.alpha_regularizer),
                    "registered_name": None},
                "alpha_constraint": None, "shared_axes": self.shared_axes}


ACTIVATION_LAYERS = {cls.__name__: cls for cls in (Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax)}
_KERAS_BASE = ("name", "trainable", "dtype")


def keras_config(layer, base) -> tuple[str, dict]:
    """(class name, Keras config) of an activation layer for a ``.keras`` file: ``base`` (name, trainable,
    dtype as the file writes them) and the layer's own keys, which get_config already gives as Keras does."""
    own = {k: v for k, v in layer.get_config().items() if k not in _KERAS_BASE + ("input_shape",)}
    return type(layer).__name__, {**base, **own}


def from_keras(cls):
    """The reader of a Keras config of ``cls``: its own keys and the name (dtype and trainable as _base checks)."""
    def make(cfg):
        return cls(**{k: v for k, v in cfg.items() if k in cls.config_keys and k != "input_shape"})
    return make
