"""The NumPy (or CuPy) evaluation of a traced program, in place on preallocated buffers.

Each node gets one buffer per batch size, made on the first step of that size and reused after:
a step then allocates no arrays (only NumPy's small view objects for ``expand``). Constants and
parameters stay Python floats, which NumPy folds into float32 arithmetic without promoting it.
"""
from __future__ import annotations

from .graph import REDUCTIONS

_SAME_NAME = {"abs", "square", "sqrt", "exp", "log", "log1p", "sign", "tanh", "negative", "logical_not",
              "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "greater", "greater_equal",
              "less", "less_equal", "equal", "not_equal", "logical_and", "logical_or"}


def _sigmoid(xp, out, a):
    xp.multiply(a, 0.5, out=out)  # 1 / (1 + exp(-a)) as (tanh(a / 2) + 1) / 2: no overflow for any a
    xp.tanh(out, out=out)
    out *= 0.5
    out += 0.5


def _where(xp, out, c, a, b):
    xp.copyto(out, b)
    if not hasattr(c, "dtype") or c.dtype != bool:
        c = xp.not_equal(c, 0)  # a numeric condition (rare: comparisons already give bool buffers)
    xp.copyto(out, a, where=c)


def _compute(xp, node, out, args):
    op = node.op
    if op in _SAME_NAME:
        getattr(xp, op)(*args, out=out)
    elif op == "sigmoid":
        _sigmoid(xp, out, args[0])
    elif op == "softplus":
        xp.logaddexp(args[0], 0.0, out=out)
    elif op == "relu":
        xp.maximum(args[0], 0.0, out=out)
    elif op in ("cast", "bcast"):
        xp.copyto(out, args[0], casting="unsafe")
    elif op == "expand":
        xp.copyto(out, args[0][:, None])
    elif op == "where":
        _where(xp, out, *args)
    elif op == "clip":
        xp.minimum(xp.maximum(args[0], args[1], out=out), args[2], out=out)
    elif op in REDUCTIONS:
        getattr(xp, op)(args[0], axis=-1, keepdims=node.attrs["keepdims"], out=out)
    else:
        raise AssertionError(f"no evaluation for {op!r}")


class Evaluator:
    """Runs a program's nodes in order on ``xp`` arrays of ``dtype`` (the model's)."""

    def __init__(self, program, xp, dtype):
        self.program, self.xp, self.dtype = program, xp, dtype
        self._buffers = {}  # rows -> {node id: buffer}

    def _shape(self, node, n):
        return tuple(n if d == "N" else d for d in node.shape)

    def _alloc(self, n):
        bufs = {}
        for node in self.program.order:
            if node.op not in ("const", "input", "param"):
                bufs[node.id] = self.xp.empty(self._shape(node, n), bool if node.dtype == "bool" else self.dtype)
        self._buffers[n] = bufs
        return bufs

    def run(self, n: int, arrays: dict, params: dict):
        """Write the program's array outputs into ``arrays`` (its input arrays are read from there);
        return the sum over rows of its row output (None without one)."""
        program = self.program
        bufs = self._buffers.get(n) or self._alloc(n)
        values = {}
        for node in program.order:
            if node.op == "const":
                values[node.id] = node.value
            elif node.op == "input":
                values[node.id] = arrays[node.attrs["name"]]
            elif node.op == "param":
                values[node.id] = params[node.attrs["name"]]
            else:
                out = bufs[node.id]
                _compute(self.xp, node, out, [values[a.id] for a in node.args])
                values[node.id] = out
        for name, node in program.outputs:
            dst = arrays[name]
            self.xp.copyto(dst, values[node.id].reshape(dst.shape) if node.ndim == 1 else values[node.id],
                           casting="unsafe")
        if program.row_sum is None:
            return None
        return values[program.row_sum.id].sum()
