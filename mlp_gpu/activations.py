"""``keras.activations``: the activation table, the one place an activation is defined.

Each entry holds everything every part of the library needs of it:

- ``forward(z)``: NumPy, ``z <- f(z)`` in place (``z`` may be a strided view); the CPU backend and the
  test oracle;
- ``derivative(dy, v)``: NumPy, ``dy <- dy * f'(.)`` in place, written through ``v``: the output y
  (layers keep their outputs), or for an entry with ``from_input`` the input z (gelu, silu, mish and
  hard_silu are not one-to-one: their output does not tell the slope; a layer using one keeps z);
- ``cuda_forward`` / ``cuda_derivative``: the same as C expressions of ``float x`` and of ``float y``
  (``x`` for ``from_input``), from which ``kernels/activations.cuh`` is generated (:func:`cuda_header`):
  the kernels' activation switch is never written by hand, and nvcc, NVRTC and the host harness all
  compile that file;
- ``row_kernels``: a row operation's (softmax, log_softmax) own forward and backward kernels;
- ``onnx``: the ONNX operator, its attributes and any constant inputs after x, for the exporter (or a
  function adding several nodes: silu is Sigmoid then Mul at opset 21);
- ``function``: Keras' function of the same name, with Keras' parameters (``relu(x, negative_slope=0.0,
  max_value=None, threshold=0.0)``): calling an entry calls it, and ``inspect.signature`` shows it.

Its position in the table is its code: the kernels see ``ACT_<NAME>`` (backend/shared_constants.py).
Adding an activation is one ``Activation(...)`` line below and ``make headers``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import special

from . import activation_formulas as formulas
from ._checks import check_number


@dataclass(frozen=True)
class Activation:
    name: str
    forward: Callable[[np.ndarray], None]
    derivative: Callable[[np.ndarray, np.ndarray], None]
    cuda_forward: str | None
    cuda_derivative: str | None
    # (op, attributes) or (op, attributes, constant inputs); or fn(graph, x, base) -> output, for several nodes
    onnx: tuple | Callable | None = None
    row_wise: bool = field(default=False)  # softmax, log_softmax: over each row, their own kernels
    from_input: bool = False   # derivative(dy, z) reads the input z, not the output
    row_kernels: tuple | None = None  # (forward, backward) kernel names of a row operation
    function: Callable | None = None  # Keras' function with its parameters; None: f(x) alone

    def __post_init__(self):
        fn = self.function or _plain(self.name)
        object.__setattr__(self, "function", fn)
        object.__setattr__(self, "__signature__", inspect.signature(fn))  # Keras' parameters
        object.__setattr__(self, "__name__", self.name)
        object.__setattr__(self, "__doc__", fn.__doc__)

    def __call__(self, *args, **kwargs):
        """``keras.activations.relu(x, ...)``: f(x) as a new float32 array (x is not changed)."""
        return self.function(*args, **kwargs)

    def apply(self, x) -> np.ndarray:
        """The table's own f(x) (Keras' defaults), as a new float32 array, over the last axis for a row op."""
        y = np.array(x, dtype=np.float32)
        self.forward(y if y.ndim == 2 or not self.row_wise else y.reshape(-1, y.shape[-1]))
        return y

    def __repr__(self):
        return f"<activation {self.name}>"


def _plain(name):
    def fn(x):
        return ACTIVATIONS[name].apply(x)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``keras.activations.{name}(x)``: a new float32 array."
    return fn


def stable_sigmoid(z, out, xp=np):
    """out <- 1 / (1 + exp(-z)), z clipped to +-88 so exp never overflows (as the kernels' sigmoidf_stable)."""
    xp.negative(z, out=out)
    xp.clip(out, -88.0, 88.0, out=out)
    xp.exp(out, out=out)
    out += 1
    xp.reciprocal(out, out=out)
    return out


def _softmax_rows(z):
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)


def _softmax_derivative(dy, y):
    s = (dy * y).sum(axis=1, keepdims=True)
    dy -= s
    dy *= y


def _log_softmax_rows(z):
    z -= z.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))


def _log_softmax_derivative(dy, y):
    dy -= np.exp(y) * dy.sum(axis=1, keepdims=True)  # softmax = exp(log_softmax)


LEAKY_SLOPE = 0.2  # keras.activations.leaky_relu's negative_slope
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805  # Klambauer et al. (2017), as Keras
SQRT_HALF, INV_SQRT_2PI = 0.7071067811865476, 0.3989422804014327  # gelu: Phi(x) = erfc(-x / sqrt 2) / 2


def _elu_inplace(z, alpha=1.0, scale=1.0):
    """scale * (z > 0 ? z : alpha (exp(z) - 1)), in place."""
    negative = z <= 0
    z[negative] = alpha * np.expm1(z[negative])
    if scale != 1.0:
        z *= scale


def _softplus_of(z):
    """log(1 + exp(z)) without overflow: max(z, 0) + log1p(exp(-|z|)), as a new array."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _softplus(z):
    z[...] = _softplus_of(z)


def _gelu_inplace(z):
    """z Phi(z), the exact (erf) form Keras' activations.gelu defaults to; erfc keeps the negative tail."""
    z *= 0.5 * special.erfc(-z * SQRT_HALF)


def _gelu_derivative(dy, z):
    dy *= 0.5 * special.erfc(-z * SQRT_HALF) + z * INV_SQRT_2PI * np.exp(-0.5 * z * z)


def _silu_derivative(dy, z):
    s = stable_sigmoid(z, np.empty_like(z))
    dy *= s * (1 + z * (1 - s))


def _mish(z):
    z *= np.tanh(_softplus_of(z))


def _mish_derivative(dy, z):
    t = np.tanh(_softplus_of(z))
    dy *= t + z * (1 - t * t) * stable_sigmoid(z, np.empty_like(z))


def _hard_silu_derivative(dy, z):
    dy *= np.where(z < -3, 0.0, np.where(z > 3, 1.0, z / 3 + 0.5))


def _f(value) -> str:
    """A float as a C float literal."""
    return f"{value!r}f"


def _float32(x) -> np.ndarray:
    return np.array(x, dtype=np.float32)


def _relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """``keras.activations.relu``: max(x, 0); with ``max_value`` clipped there, with ``threshold`` zero up to
    it, with ``negative_slope`` that slope below it (Keras' formula). A new float32 array."""
    check_params("relu", negative_slope=negative_slope, max_value=max_value, threshold=threshold)
    if negative_slope == 0 and threshold == 0 and max_value is None:
        return ACTIVATIONS["relu"].apply(x)
    return formulas.relu(np, _float32(x), negative_slope, max_value, threshold).astype(np.float32, copy=False)


def _leaky_relu(x, negative_slope=0.2):
    """``keras.activations.leaky_relu``: x where x > 0, else negative_slope * x. A new float32 array."""
    check_params("leaky_relu", negative_slope=negative_slope)
    if negative_slope == LEAKY_SLOPE:
        return ACTIVATIONS["leaky_relu"].apply(x)
    return formulas.leaky_relu(np, _float32(x), np.float32(negative_slope)).astype(np.float32, copy=False)


def _elu(x, alpha=1.0):
    """``keras.activations.elu``: x where x > 0, else alpha (exp(x) - 1). A new float32 array."""
    check_params("elu", alpha=alpha)
    y = ACTIVATIONS["elu"].apply(x)
    if alpha != 1.0:
        np.multiply(y, np.float32(alpha), out=y, where=y < 0)
    return y


def _gelu(x, approximate=False):
    """``keras.activations.gelu``: x Phi(x), Phi the standard normal CDF (with ``approximate``, Keras' tanh
    form). A new float32 array."""
    if not isinstance(approximate, (bool, np.bool_)):
        raise ValueError(f"activations.gelu(approximate): expected True or False, got {approximate!r}")
    if not approximate:
        return ACTIVATIONS["gelu"].apply(x)
    return formulas.gelu_tanh(np, _float32(x)).astype(np.float32, copy=False)


def _along(name, x, axis):
    """A row operation of the table over ``axis`` of x."""
    y = _float32(x)
    if y.ndim == 0:
        raise ValueError(f"activations.{name}: expected an array with at least one axis, got a scalar")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -y.ndim <= axis < y.ndim:
        raise ValueError(f"activations.{name}(axis): expected an int in [{-y.ndim}, {y.ndim}), got {axis!r}")
    moved = np.ascontiguousarray(np.moveaxis(y, axis, -1))
    ACTIVATIONS[name].forward(moved.reshape(-1, moved.shape[-1]))
    return np.moveaxis(moved, -1, axis)


def _softmax(x, axis=-1):
    """``keras.activations.softmax``: exp(x) / sum(exp(x)) over ``axis``. A new float32 array."""
    return _along("softmax", x, axis)


def _log_softmax(x, axis=-1):
    """``keras.activations.log_softmax``: x - log(sum(exp(x))) over ``axis``. A new float32 array."""
    return _along("log_softmax", x, axis)


def _named(fn, name):
    fn.__name__ = fn.__qualname__ = name
    return fn


KERAS_FUNCTIONS = {name: _named(fn, name) for name, fn in (
    ("relu", _relu), ("leaky_relu", _leaky_relu), ("elu", _elu), ("gelu", _gelu), ("softmax", _softmax),
    ("log_softmax", _log_softmax))}


_SOFTPLUS_C = "(fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))))"
_MISH_TANH_C = f"tanhf({_SOFTPLUS_C})"

TABLE = (
    Activation("linear", lambda z: None, lambda dy, y: None, "x", "1.0f"),
    Activation("relu", lambda z: np.maximum(z, 0, out=z), lambda dy, y: np.multiply(dy, y > 0, out=dy),
               "fmaxf(x, 0.0f)", "(y > 0.0f ? 1.0f : 0.0f)", ("Relu", {}), function=KERAS_FUNCTIONS["relu"]),
    Activation("sigmoid", lambda z: stable_sigmoid(z, out=z), lambda dy, y: np.multiply(dy, y * (1 - y), out=dy),
               "sigmoidf_stable(x)", "y * (1.0f - y)", ("Sigmoid", {})),
    Activation("tanh", lambda z: np.tanh(z, out=z), lambda dy, y: np.multiply(dy, 1 - y * y, out=dy),
               "tanhf(x)", "1.0f - y * y", ("Tanh", {})),
    Activation("softmax", _softmax_rows, _softmax_derivative, None, None, ("Softmax", {"axis": -1}), row_wise=True,
               row_kernels=("bias_softmax_forward", "softmax_backward"), function=KERAS_FUNCTIONS["softmax"]),
    Activation("leaky_relu", lambda z: np.maximum(z, np.float32(LEAKY_SLOPE) * z, out=z),
               lambda dy, y: np.multiply(dy, np.where(y > 0, 1, LEAKY_SLOPE), out=dy),
               f"fmaxf(x, {_f(LEAKY_SLOPE)} * x)", f"(y > 0.0f ? 1.0f : {_f(LEAKY_SLOPE)})",
               ("LeakyRelu", {"alpha": LEAKY_SLOPE}), function=KERAS_FUNCTIONS["leaky_relu"]),
    Activation("elu", _elu_inplace, lambda dy, y: np.multiply(dy, np.where(y > 0, 1, y + 1), out=dy),
               "(x > 0.0f ? x : expm1f(x))", "(y > 0.0f ? 1.0f : y + 1.0f)", ("Elu", {"alpha": 1.0}),
               function=KERAS_FUNCTIONS["elu"]),
    Activation("selu", lambda z: _elu_inplace(z, SELU_ALPHA, SELU_SCALE),
               lambda dy, y: np.multiply(dy, np.where(y > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA), out=dy),
               f"{_f(SELU_SCALE)} * (x > 0.0f ? x : {_f(SELU_ALPHA)} * expm1f(x))",
               f"(y > 0.0f ? {_f(SELU_SCALE)} : y + {_f(SELU_SCALE * SELU_ALPHA)})", ("Selu", {})),
    Activation("softplus", _softplus, lambda dy, y: np.multiply(dy, -np.expm1(-y), out=dy),
               _SOFTPLUS_C[1:-1], "-expm1f(-y)", ("Softplus", {})),
    Activation("softsign", lambda z: np.divide(z, 1 + np.abs(z), out=z),
               lambda dy, y: np.multiply(dy, (1 - np.abs(y)) ** 2, out=dy),
               "x / (1.0f + fabsf(x))", "(1.0f - fabsf(y)) * (1.0f - fabsf(y))", ("Softsign", {})),
    Activation("relu6", lambda z: np.clip(z, 0, 6, out=z), lambda dy, y: np.multiply(dy, (y > 0) & (y < 6), out=dy),
               "fminf(fmaxf(x, 0.0f), 6.0f)", "(y > 0.0f && y < 6.0f ? 1.0f : 0.0f)", ("Clip", {}, (0.0, 6.0))),
    Activation("hard_sigmoid", lambda z: np.clip(z / 6 + 0.5, 0, 1, out=z),
               lambda dy, y: np.multiply(dy, ((y > 0) & (y < 1)) / 6, out=dy),
               "fminf(fmaxf(x / 6.0f + 0.5f, 0.0f), 1.0f)", "(y > 0.0f && y < 1.0f ? 1.0f / 6.0f : 0.0f)",
               ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5})),
    Activation("exponential", lambda z: np.exp(z, out=z), lambda dy, y: np.multiply(dy, y, out=dy),
               "expf(x)", "y", ("Exp", {})),
    # differentiated through the input (from_input): a layer using one keeps its pre-activation
    Activation("gelu", _gelu_inplace, _gelu_derivative, f"0.5f * x * erfcf(-x * {_f(SQRT_HALF)})",
               f"0.5f * erfcf(-x * {_f(SQRT_HALF)}) + x * {_f(INV_SQRT_2PI)} * expf(-0.5f * x * x)",
               ("Gelu", {}), from_input=True, function=KERAS_FUNCTIONS["gelu"]),
    Activation("silu", lambda z: np.multiply(z, stable_sigmoid(z, np.empty_like(z)), out=z), _silu_derivative,
               "x * sigmoidf_stable(x)", "sigmoidf_stable(x) * (1.0f + x * (1.0f - sigmoidf_stable(x)))",
               lambda graph, x, base: graph.node("Mul", [x, graph.node("Sigmoid", [x], f"{base}/sigmoid")], base),
               from_input=True),  # ONNX opset 21 has no Swish: two nodes, built by the exporter's graph
    Activation("mish", _mish, _mish_derivative, f"x * {_MISH_TANH_C}",
               f"{_MISH_TANH_C} + x * (1.0f - {_MISH_TANH_C} * {_MISH_TANH_C}) * sigmoidf_stable(x)",
               ("Mish", {}), from_input=True),
    Activation("hard_silu", lambda z: np.multiply(z, np.clip(z / 6 + 0.5, 0, 1), out=z), _hard_silu_derivative,
               "x * fminf(fmaxf(x / 6.0f + 0.5f, 0.0f), 1.0f)",
               "(x < -3.0f ? 0.0f : (x > 3.0f ? 1.0f : x / 3.0f + 0.5f))", ("HardSwish", {}), from_input=True),
    Activation("log_softmax", _log_softmax_rows, _log_softmax_derivative, None, None, ("LogSoftmax", {"axis": -1}),
               row_wise=True, row_kernels=("bias_log_softmax_forward", "log_softmax_backward"),
               function=KERAS_FUNCTIONS["log_softmax"]),
)

ACTIVATIONS = {a.name: a for a in TABLE}
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}  # Keras' other names for the same functions


def _lookup(name: str):
    return ACTIVATIONS.get(ALIASES.get(name, name))


def _unknown(identifier):
    return ValueError(f"activation: expected one of {list(ACTIVATIONS) + list(ALIASES)}, None or a callable, "
                      f"got {identifier!r}")


def get(identifier):
    """``keras.activations.get``: None is linear; a name (or Keras' alias, "swish") an entry of the table;
    a serialized dict is deserialized; a callable is returned as it is."""
    if identifier is None:
        return ACTIVATIONS["linear"]
    if isinstance(identifier, str):
        if _lookup(identifier) is None:
            raise _unknown(identifier)
        return _lookup(identifier)
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise _unknown(identifier)


def serialize(activation):
    """``keras.activations.serialize``: a built-in's name ("relu"); a Python function's name, as Keras
    writes a registered one (its code is never written)."""
    if isinstance(activation, Activation):
        return activation.name
    if isinstance(activation, str):
        return get(activation).name
    name = getattr(activation, "__name__", None)
    if callable(activation) and isinstance(name, str) and name != "<lambda>":
        return name
    raise ValueError(f"activation: cannot serialize {activation!r}: expected a built-in activation or a named "
                     "function")


def deserialize(config, custom_objects=None):
    """``keras.activations.deserialize``: an activation from its name, or from Keras' serialized form
    ``{"class_name": "function", "config": "relu", ...}``; ``custom_objects`` maps names to functions."""
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise ValueError(f"deserialize(custom_objects): expected a dict of names to functions, got {custom_objects!r}")
    name = config
    if isinstance(config, dict):
        name = config.get("config")
        if config.get("class_name") != "function" or not isinstance(name, str):
            raise ValueError(f"deserialize(config): expected a name or {{'class_name': 'function', 'config': name}}, "
                             f"got {config!r}")
    if not isinstance(name, str):
        raise ValueError(f"deserialize(config): expected a name or a serialized function, got {config!r}")
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if _lookup(name) is None:
        raise _unknown(name)
    return _lookup(name)


def cuda_header() -> str:
    """``kernels/activations.cuh``: the element-wise activations as two device functions over the codes.
    A test keeps the file equal to this text; ``make headers`` writes it."""
    lines = ["// Generated from mlp_gpu/activations.py by cuda_header(); do not edit.",
             "// activate(x, act): the activation of x; activation_derivative(v, act): its derivative, written",
             "// through v: the output y = activate(x, act), or the input x where the output cannot tell",
             "// the slope (gelu, silu, mish, hard_silu: the caller passes x). Codes ACT_* come from shared_constants.",
             "#pragma once", "",
             "__device__ __forceinline__ float activate(float x, int act) {", "    switch (act) {"]
    elementwise = [a for a in TABLE if not a.row_wise and a.name != "linear"]
    lines += [f"        case ACT_{a.name.upper()}: return {a.cuda_forward};" for a in elementwise]
    lines += ["        default: return x;", "    }", "}", "",
              "__device__ __forceinline__ float activation_derivative(float v, int act) {", "    switch (act) {"]
    lines += [f"        case ACT_{a.name.upper()}: {{ const float {'x' if a.from_input else 'y'} = v; "
              f"return {a.cuda_derivative}; }}" for a in elementwise]
    lines += ["        default: return 1.0f;", "    }", "}"]
    return "\n".join(lines) + "\n"


def check_params(name, **params):
    """Keras' numeric parameters of an activation, each a finite number (max_value may be None)."""
    for arg, value in params.items():
        if not (arg == "max_value" and value is None):
            check_number(value, f"activations.{name}({arg})")


globals().update({a.name: a for a in TABLE})  # keras.activations.relu(x) and friends
swish, hard_swish = ACTIVATIONS["silu"], ACTIVATIONS["hard_silu"]
__all__ = ["Activation", "ACTIVATIONS", "ALIASES", "get", "serialize", "deserialize", *ACTIVATIONS, *ALIASES]
