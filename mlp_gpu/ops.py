"""``keras.ops`` names for element-wise and row-wise functions, with Keras 3's signatures.

On concrete arrays each op computes with the array's module (NumPy, or CuPy for a CuPy array). On
the symbolic arrays a custom loss, metric, Lambda layer or activation receives while ``compile``
traces it, each op records a node of the expression graph that ``mlp_gpu.tracing`` differentiates
and compiles (one CUDA kernel on the GPU, in-place NumPy on the CPU). ``TRACED_OPS`` lists the
table; any other ``mlp_gpu.ops`` name is refused with the list.
"""
from __future__ import annotations

import numpy as np

from .backend.arrays import array_module
from .tracing.graph import REDUCTIONS, Symbol, TraceError, apply, reduce, refuse, user_site

_FLOATS = ("float16", "float32", "float64", "bfloat16")


def _symbolic(*args) -> bool:
    return any(isinstance(a, Symbol) for a in args)


def _sigmoid(xp, x):
    return 0.5 * xp.tanh(0.5 * xp.asarray(x)) + 0.5


_CONCRETE = {"sigmoid": _sigmoid, "softplus": lambda xp, x: xp.logaddexp(x, 0.0),
             "relu": lambda xp, x: xp.maximum(x, 0.0)}


def _op(name):
    def op(*args):
        if _symbolic(*args):
            return apply(name, *args)
        xp = array_module(*args)
        return _CONCRETE[name](xp, *args) if name in _CONCRETE else getattr(xp, name)(*args)
    return op


def _unary(name, doc):
    fn = _op(name)

    def unary(x):
        return fn(x)
    unary.__name__ = unary.__qualname__ = name
    unary.__doc__ = doc
    return unary


def _binary(name, doc):
    fn = _op(name)

    def binary(x1, x2):
        return fn(x1, x2)
    binary.__name__ = binary.__qualname__ = name
    binary.__doc__ = doc
    return binary


abs = _unary("abs", "|x| element-wise; its gradient at 0 is 0 (as the torch backend).")  # noqa: A001
absolute = abs
square = _unary("square", "x * x element-wise.")
sqrt = _unary("sqrt", "The square root element-wise.")
exp = _unary("exp", "e ** x element-wise.")
log = _unary("log", "The natural logarithm element-wise.")
log1p = _unary("log1p", "log(1 + x) element-wise, exact for small x.")
sign = _unary("sign", "-1, 0 or 1 element-wise (no gradient).")
tanh = _unary("tanh", "The hyperbolic tangent element-wise.")
sigmoid = _unary("sigmoid", "1 / (1 + exp(-x)) element-wise, without overflow.")
softplus = _unary("softplus", "log(1 + exp(x)) element-wise, without overflow.")
relu = _unary("relu", "max(x, 0) element-wise.")
negative = _unary("negative", "-x element-wise.")
logical_not = _unary("logical_not", "not x element-wise.")
add = _binary("add", "x1 + x2, broadcast.")
subtract = _binary("subtract", "x1 - x2, broadcast.")
multiply = _binary("multiply", "x1 * x2, broadcast.")
divide = true_divide = _binary("divide", "x1 / x2, broadcast.")
power = _binary("power", "x1 ** x2, broadcast.")
maximum = _binary("maximum", "The larger of x1 and x2; a tie splits the gradient in halves.")
minimum = _binary("minimum", "The smaller of x1 and x2; a tie splits the gradient in halves.")
greater = _binary("greater", "x1 > x2.")
greater_equal = _binary("greater_equal", "x1 >= x2.")
less = _binary("less", "x1 < x2.")
less_equal = _binary("less_equal", "x1 <= x2.")
equal = _binary("equal", "x1 == x2.")
not_equal = _binary("not_equal", "x1 != x2.")
logical_and = _binary("logical_and", "x1 and x2 element-wise.")
logical_or = _binary("logical_or", "x1 or x2 element-wise.")


def where(condition, x1=None, x2=None):
    """x1 where condition holds, else x2 (Keras' signature; the one-argument form is not traceable)."""
    if x1 is None or x2 is None:
        if _symbolic(condition):
            refuse("where", "where(condition) without x1 and x2 gives indices, whose number depends on the data")
        return array_module(condition).where(condition)
    if _symbolic(condition, x1, x2):
        return apply("where", condition, x1, x2)
    return array_module(condition, x1, x2).where(condition, x1, x2)


def clip(x, x_min, x_max):
    """min(max(x, x_min), x_max); the gradient passes on the closed interval."""
    if _symbolic(x, x_min, x_max):
        return apply("clip", x, x_min, x_max)
    return array_module(x).clip(x, x_min, x_max)


def _reduction(name):
    def reduction(x, axis=None, keepdims=False):
        if _symbolic(x):
            return reduce(name, x, axis, keepdims)
        return getattr(array_module(x), name)(x, axis=axis, keepdims=keepdims)
    reduction.__name__ = reduction.__qualname__ = name
    reduction.__doc__ = f"The {name} over ``axis``; traced, only axis=-1 (the row's columns)."
    return reduction


sum = _reduction("sum")  # noqa: A001
mean = _reduction("mean")


def _extremum(name, other):
    plain = _reduction(name)

    def extremum(x, axis=None, keepdims=False, initial=None):
        if initial is None:
            return plain(x, axis, keepdims)
        if _symbolic(x):
            refuse(name, f"initial= is not traceable; use {other}({name}(x, axis=-1), initial)")
        return getattr(array_module(x), name)(x, axis=axis, keepdims=keepdims, initial=initial)
    extremum.__name__ = extremum.__qualname__ = name
    extremum.__doc__ = f"The {name}imum over ``axis``; traced, only axis=-1 and initial=None."
    return extremum


max = _extremum("max", "maximum")  # noqa: A001
min = _extremum("min", "minimum")  # noqa: A001


def cast(x, dtype):
    """x in ``dtype``; traced, float dtypes and "bool" only (an integer cast would truncate silently)."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if _symbolic(x):
        if name not in _FLOATS + ("bool",):
            refuse("cast", f"dtype {name!r}: traced arrays are float32 (or bool); cast to a float dtype")
        return apply("cast", x, dtype="bool" if name == "bool" else "float")
    return array_module(x).asarray(x).astype(name)


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """A symbol as it is; anything else an array of ``dtype`` (constants for traced functions)."""
    if sparse or ragged:
        raise ValueError("convert_to_tensor: sparse and ragged tensors are not supported")
    if _symbolic(x):
        return x if dtype is None else cast(x, dtype)
    return array_module(x).asarray(x, dtype=dtype)


TRACED_OPS = ("abs", "absolute", "square", "sqrt", "exp", "log", "log1p", "sign", "tanh", "sigmoid", "softplus",
              "relu", "negative", "logical_not", "add", "subtract", "multiply", "divide", "true_divide", "power",
              "maximum", "minimum", "greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
              "logical_and", "logical_or", "where", "clip", *REDUCTIONS, "cast", "convert_to_tensor")


class UnknownOp(TraceError, AttributeError):
    """An op outside the table (an AttributeError too, so hasattr(ops, name) answers False)."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnknownOp(f"op {name!r} at {user_site()}: mlp_gpu.ops.{name} is not in the traced op table; "
                    f"the ops are {', '.join(TRACED_OPS)} "
                     "(and the arithmetic and comparison operators)")
