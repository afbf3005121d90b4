"""Tracing a user function into a program: inputs, outputs, an optional row sum, and its kernel.

``trace_rows`` traces a loss or metric ``fn(y_true, y_pred)``; ``trace_map`` a layer ``fn(x)``.
A program is what the backends run: ``Backend.run_traced(program, arrays, acc, slot, acc_scale,
params)`` evaluates it with NumPy (``Evaluator``) or launches its generated kernel (``source``).
"""
from __future__ import annotations

import functools
import hashlib
import inspect

from ..backend.cuda import kernels
from .cuda_source import kernel_source
from .graph import Symbol, TraceError, reduce, topological, user_site
from .grad import vjp

REDUCTIONS = ("sum_over_batch_size", "sum", "mean")  # Keras' reductions a training loss may use


def describe(fn) -> str:
    """'name (file:line)' of a Python callable, for error messages."""
    target = getattr(fn, "__func__", fn)
    name = getattr(target, "__qualname__", None) or type(fn).__qualname__
    try:
        return f"{name} ({inspect.getsourcefile(target)}:{inspect.getsourcelines(target)[1]})"
    except (OSError, TypeError):
        return name


def function_name(fn) -> str:
    """The name a model file stores for a user's function (its code is never stored)."""
    return getattr(fn, "__name__", type(fn).__name__)


def call_traced(fn, label, *args) -> Symbol:
    """fn(*args) on symbols; any failure becomes a TraceError naming the function, its line and the op."""
    try:
        out = fn(*args)
    except TraceError as exc:
        raise TraceError(f"{label} cannot be traced: {exc}") from None
    except Exception as exc:  # noqa: BLE001 -- whatever the function did, the message says where
        raise TraceError(f"{label} cannot be traced: {type(exc).__name__}: {exc} (at {user_site_of(exc)})") from None
    if not isinstance(out, Symbol) or out.op == "const" or not out.shape:
        raise TraceError(f"{label} cannot be traced: it returned {out!r}, not an array computed from its inputs "
                         "with mlp_gpu.ops")
    return out


def user_site_of(exc) -> str:
    tb = exc.__traceback__
    site = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if "mlp_gpu/tracing" not in code.co_filename:
            site = f"{code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return site or user_site()


def _merge_common(roots) -> list[Symbol]:
    """One node for each distinct computation (the function and its gradient repeat many: abs(error), the
    same constant), so each is evaluated once a step; the roots, remapped. Nodes are never changed (a
    layer's forward and backward programs share theirs): a node whose arguments merged is copied."""
    canonical, remap = {}, {}
    for node in topological(roots):
        args = tuple(remap.get(a.id, a) for a in node.args)
        key = (node.op, node.value, node.shape, node.dtype, tuple(a.id for a in args),
               tuple(sorted(node.attrs.items())))
        if key not in canonical:
            same = all(a is b for a, b in zip(args, node.args))
            canonical[key] = node if same else Symbol(node.op, args, node.shape, node.dtype, node.attrs, node.value)
        remap[node.id] = canonical[key]
    return [remap[r.id] for r in roots]


class Program:
    """Inputs (names, (N, k) arrays), outputs (name, Symbol), scalar params and an optional row sum."""

    def __init__(self, label, inputs, outputs, row_sum=None, params=()):
        self.label = label
        self.inputs = list(inputs)
        self.input_names = [s.attrs["name"] for s in self.inputs]
        self.outputs = list(outputs)
        self.row_sum = row_sum
        self.param_names = list(params)
        roots = _merge_common([node for _, node in self.outputs] + ([row_sum] if row_sum is not None else []))
        self.outputs = [(name, node) for (name, _), node in zip(self.outputs, roots)]
        self.row_sum = roots[-1] if row_sum is not None else None
        self.order = topological(roots)
        self.kernel_name = "traced_" + hashlib.sha256(self.source_key().encode()).hexdigest()[:16]
        # known to the CUDA backend from now on: it compiles it with the kernel files, before any graph capture
        kernels.register_generated(self.kernel_name, self.source)

    def order_of(self, roots) -> list[Symbol]:
        wanted = {n.id for n in topological(roots)}
        return [n for n in self.order if n.id in wanted]

    def source_key(self) -> str:
        """A text that determines the generated code (node ops, attributes, constants, wiring)."""
        index = {n.id: i for i, n in enumerate(self.order)}
        rows = [f"{n.op}{n.shape}{sorted(n.attrs.items())}{n.value}{[index[a.id] for a in n.args]}" for n in self.order]
        outs = [f"{name}={index[n.id]}" for name, n in self.outputs]
        return "|".join(rows + outs + [str(index.get(getattr(self.row_sum, "id", None)))] + self.input_names)

    @functools.cached_property
    def source(self) -> str:
        return kernel_source(self)


def _input(name, cols):
    return Symbol("input", shape=("N", cols), attrs={"name": name})


def trace_rows(fn, cols: int, label: str, reduction: str = "sum_over_batch_size", grad: bool = True) -> Program:
    """A loss or metric ``fn(y_true, y_pred)`` over (N, cols) arrays.

    The row value is fn's output, averaged over its last axis when it has one per column (Keras'
    ``sum_over_batch_size`` divides the sum of all elements by their count: the mean of the row
    means), summed with reduction="sum". With ``grad`` the program also writes
    dz = grad_scale * d(row value)/d(y_pred) (grad_scale: 1/n for a mean over the batch, 1 for a sum).
    """
    y_true, y_pred = _input("t", cols), _input("z", cols)
    out = call_traced(fn, label, y_true, y_pred)
    if out.ndim == 2:
        row = reduce("sum" if reduction == "sum" else "mean", out, -1, False)
    else:
        row = out
    outputs, params = [], []
    if grad:
        seed = Symbol("param", shape=(), attrs={"name": "grad_scale"})
        outputs.append(("dz", vjp(row, seed, y_pred)))
        params.append("grad_scale")
    return Program(label, [y_true, y_pred], outputs, row, params)


def trace_map(fn, cols: int, label: str) -> tuple[Program, Program, int]:
    """A layer ``fn(x)`` on (N, cols) inputs: (forward x -> y, backward (x, dy) -> dx, y's columns)."""
    x = _input("x", cols)
    y = call_traced(fn, label, x)
    if y.ndim != 2:
        raise TraceError(f"{label}: returns shape {y.shape}; a layer's output needs a column axis "
                         "(keepdims=True on a reduction)")
    out_cols = y.shape[1]
    forward = Program(label, [x], [("y", y)])
    dy = _input("dy", out_cols)
    backward = Program(label + " (gradient)", [x, dy], [("dx", vjp(y, dy, x))])
    return forward, backward, out_cols
