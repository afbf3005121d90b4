"""The recorded expression graph: symbolic arrays, their shapes, and the refusals.

A ``Symbol`` stands for a batch array while a user function is traced. Its shape is a tuple whose
first entry is the batch axis ``"N"`` (unknown until a step runs) followed by concrete sizes:
``("N", K)`` for a (rows, columns) array, ``("N", 1)`` after a ``keepdims`` reduction, ``("N",)``
for a per-row value, ``()`` for a constant. Broadcasting follows NumPy's rules on these shapes, so
a per-row ``("N",)`` against ``("N", K)`` is refused (NumPy would pair N with K).

Everything a traced function could do that the graph cannot hold raises ``TraceError`` at once:
``if symbol:`` (``__bool__``), ``float(symbol)``, a NumPy call on a symbol (``__array_ufunc__``,
``__array_function__``, ``__array__``) and any method or attribute outside the op table.
"""
from __future__ import annotations

import inspect
import itertools
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parents[1])  # mlp_gpu/: frames inside it are ours, not the user's
_ids = itertools.count()


class TraceError(ValueError):
    """A function cannot be traced; the message names the function, the line and the op."""


def user_site() -> str:
    """'file:line' of the innermost frame outside mlp_gpu (the user's line that made the call)."""
    for frame in inspect.stack()[1:]:
        if not frame.filename.startswith(_PACKAGE) and "numpy" not in frame.filename.split("/")[-3:-1]:
            return f"{frame.filename}:{frame.lineno} ({frame.code_context[0].strip() if frame.code_context else ''})"
    return "<unknown line>"


def refuse(op: str, why: str):
    raise TraceError(f"op {op!r} at {user_site()}: {why}")


def broadcast(op: str, *shapes) -> tuple:
    """NumPy's broadcast of symbolic shapes, or a TraceError saying which shapes clash."""
    rank = max(len(s) for s in shapes)
    if any(s and len(s) != rank for s in shapes):  # the batch axes would not line up
        refuse(op, f"shapes {' and '.join(map(str, shapes))} do not broadcast row by row "
                   "(a per-row value needs keepdims=True to meet a (N, K) array)")
    out = []
    for axis in range(-rank, 0):
        dims = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        if len(dims) > 1:
            refuse(op, f"shapes {' and '.join(map(str, shapes))} do not broadcast row by row "
                       "(a per-row value needs keepdims=True to meet a (N, K) array)")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


class Symbol:
    """A node of the graph: ``op`` applied to ``args`` (Symbols), ``attrs`` its options (axis, ...)."""

    __array_priority__ = 1000  # NumPy scalars on the left defer to our operators

    def __init__(self, op: str, args=(), shape=(), dtype="float", attrs=None, value=None):
        self.op, self.args, self.shape, self.dtype = op, tuple(args), tuple(shape), dtype
        self.attrs = dict(attrs or {})
        self.value = value  # the number of a "const"
        self.id = next(_ids)

    def __repr__(self):
        return f"<Symbol {self.op} shape={self.shape}>"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    # ---- refusals: what needs a concrete value ----------------------------------------
    def __bool__(self):
        refuse("bool", "a Python `if`, `and`, `or` or `not` on a traced array depends on the data; "
                       "use mlp_gpu.ops.where(condition, x1, x2)")

    def __float__(self):
        refuse("float", "a traced array has no value at compile time (math.* and float() need one); use mlp_gpu.ops")

    __int__ = __index__ = __float__

    def __array__(self, *args, **kwargs):
        refuse("numpy", "NumPy cannot compute on a traced array; use mlp_gpu.ops (keras.ops names)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        refuse(f"numpy.{ufunc.__name__}", "NumPy cannot compute on a traced array; use mlp_gpu.ops."
                                          f"{ufunc.__name__} or the matching keras.ops name")

    def __array_function__(self, func, types, args, kwargs):
        refuse(f"numpy.{func.__name__}", "NumPy cannot compute on a traced array; use mlp_gpu.ops (keras.ops names)")

    def __iter__(self):
        refuse("iter", "iterating over a traced array is not traceable; write the row-wise function with mlp_gpu.ops")

    def __getitem__(self, key):
        refuse("getitem", "indexing is not in the traced op table (only element-wise and last-axis ops)")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        refuse(name, "not in the traced op table; see mlp_gpu.ops.TRACED_OPS")

    # ---- arithmetic: the same ops as mlp_gpu.ops --------------------------------------
    def __add__(self, other):
        return apply("add", self, other)

    def __radd__(self, other):
        return apply("add", other, self)

    def __sub__(self, other):
        return apply("subtract", self, other)

    def __rsub__(self, other):
        return apply("subtract", other, self)

    def __mul__(self, other):
        return apply("multiply", self, other)

    def __rmul__(self, other):
        return apply("multiply", other, self)

    def __truediv__(self, other):
        return apply("divide", self, other)

    def __rtruediv__(self, other):
        return apply("divide", other, self)

    def __pow__(self, other):
        return apply("power", self, other)

    def __rpow__(self, other):
        return apply("power", other, self)

    def __neg__(self):
        return apply("negative", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return apply("abs", self)

    def __gt__(self, other):
        return apply("greater", self, other)

    def __ge__(self, other):
        return apply("greater_equal", self, other)

    def __lt__(self, other):
        return apply("less", self, other)

    def __le__(self, other):
        return apply("less_equal", self, other)

    def __eq__(self, other):
        return apply("equal", self, other)

    def __ne__(self, other):
        return apply("not_equal", self, other)

    def __and__(self, other):
        return apply("logical_and", self, other)

    def __or__(self, other):
        return apply("logical_or", self, other)

    def __invert__(self):
        return apply("logical_not", self)

    __hash__ = object.__hash__


# op name -> (arity, result dtype: "float", "bool" or "arg" (its first argument's))
ELEMENTWISE = {
    "abs": (1, "float"), "square": (1, "float"), "sqrt": (1, "float"), "exp": (1, "float"), "log": (1, "float"),
    "log1p": (1, "float"), "sign": (1, "float"), "tanh": (1, "float"), "sigmoid": (1, "float"),
    "softplus": (1, "float"), "relu": (1, "float"), "negative": (1, "float"), "cast": (1, "float"),
    "logical_not": (1, "bool"),
    "add": (2, "float"), "subtract": (2, "float"), "multiply": (2, "float"), "divide": (2, "float"),
    "power": (2, "float"), "maximum": (2, "float"), "minimum": (2, "float"),
    "greater": (2, "bool"), "greater_equal": (2, "bool"), "less": (2, "bool"), "less_equal": (2, "bool"),
    "equal": (2, "bool"), "not_equal": (2, "bool"), "logical_and": (2, "bool"), "logical_or": (2, "bool"),
    "where": (3, "float"), "clip": (3, "float"),
}
REDUCTIONS = ("sum", "mean", "max", "min")
# internal ops the gradient adds: expand (N,) -> (N, 1); bcast stretches an adjoint to its node's shape
INTERNAL = ("expand", "bcast")


def constant(value) -> Symbol:
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, (int, float)) and not (hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0):
        refuse("constant", f"expected a number or a traced array, got {type(value).__name__}")
    return Symbol("const", value=float(value))


def as_symbol(x) -> Symbol:
    return x if isinstance(x, Symbol) else constant(x)


def apply(op: str, *args, **attrs) -> Symbol:
    """Record ``op(*args)``: an element-wise op of the table, shapes broadcast."""
    arity, dtype = ELEMENTWISE[op]
    syms = [as_symbol(a) for a in args]
    if len(syms) != arity:
        raise TypeError(f"{op}: expected {arity} arguments, got {len(syms)}")
    if op == "cast" and attrs.get("dtype") in ("bool",):
        dtype = "bool"
    return Symbol(op, syms, broadcast(op, *(s.shape for s in syms)), dtype, attrs)


def reduce(op: str, x, axis, keepdims: bool) -> Symbol:
    """Record a reduction over the last axis of a (N, K) array (the only axis a row-wise function may reduce)."""
    x = as_symbol(x)
    if x.ndim < 2 or axis not in (-1, x.ndim - 1):
        refuse(op, f"axis={axis!r} on shape {x.shape}: only the last axis of a (N, K) array reduces row by row "
                   "(axis=-1); a reduction over the batch is the loss's reduction, done by the framework")
    if not isinstance(keepdims, bool):
        raise TypeError(f"{op}(keepdims): expected True or False, got {keepdims!r}")
    shape = x.shape[:-1] + ((1,) if keepdims else ())
    return Symbol(op, (x,), shape, "float", {"keepdims": keepdims, "cols": x.shape[-1]})


def topological(outputs) -> list[Symbol]:
    """Every node the outputs depend on, arguments before their users."""
    order, seen = [], set()
    stack = [(s, False) for s in reversed(outputs)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node.id in seen:
            continue
        seen.add(node.id)
        stack.append((node, True))
        stack.extend((a, False) for a in reversed(node.args) if a.id not in seen)
    return order
