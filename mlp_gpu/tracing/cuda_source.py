"""One CUDA kernel from a traced program: forward, reductions and backward of a row in one thread.

The kernel follows kernels/loss.cu's ROW LAUNCH: a 1-D grid with grid * block >= n, whole warps,
one thread per row. Values constant along a row (per-row reductions, (N, 1) arrays, constants) are
computed once into registers; values that vary along the row are recomputed inside each loop over
the k columns that needs them, so no per-row scratch is needed whatever k is. The row output (a
loss or metric value) is summed per warp and added to acc[slot] with one atomic per warp.

Every number is float32, booleans are 0.0f / 1.0f; constants and the op spellings are the only
things generated, the rest (common.cuh's helpers, the shared constants) is our kernels' own text.
"""
from __future__ import annotations

import math

from ..backend.cuda import kernels
from .graph import REDUCTIONS, TraceError

_UNARY = {"abs": "fabsf({})", "square": "({0} * {0})", "sqrt": "sqrtf({})", "exp": "expf({})", "log": "logf({})",
          "log1p": "log1pf({})", "sign": "(float)(({0} > 0.0f) - ({0} < 0.0f))", "tanh": "tanhf({})",
          "sigmoid": "sigmoidf_stable({})", "softplus": "(fmaxf({0}, 0.0f) + log1pf(expf(-fabsf({0}))))",
          "relu": "fmaxf({}, 0.0f)", "negative": "(-{})", "cast": "{}", "bcast": "{}", "expand": "{}",
          "logical_not": "({} == 0.0f ? 1.0f : 0.0f)"}
_BINARY = {"add": "({} + {})", "subtract": "({} - {})", "multiply": "({} * {})", "divide": "({} / {})",
           "power": "powf({}, {})", "maximum": "fmaxf({}, {})", "minimum": "fminf({}, {})",
           "greater": "({} > {} ? 1.0f : 0.0f)", "greater_equal": "({} >= {} ? 1.0f : 0.0f)",
           "less": "({} < {} ? 1.0f : 0.0f)", "less_equal": "({} <= {} ? 1.0f : 0.0f)",
           "equal": "({} == {} ? 1.0f : 0.0f)", "not_equal": "({} != {} ? 1.0f : 0.0f)",
           "logical_and": "(({} != 0.0f) && ({} != 0.0f) ? 1.0f : 0.0f)",
           "logical_or": "(({} != 0.0f) || ({} != 0.0f) ? 1.0f : 0.0f)"}
_TERNARY = {"where": "({} != 0.0f ? {} : {})", "clip": "fminf(fmaxf({}, {}), {})"}


def varies(node) -> bool:
    """Whether a node's value changes along a row (a (N, K) array with K > 1)."""
    return len(node.shape) == 2 and node.shape[1] != 1


def _literal(value: float) -> str:
    if not math.isfinite(value):
        raise TraceError(f"constant {value!r}: only finite constants can be compiled into a kernel")
    return f"{float(value)!r}f"


class _Writer:
    def __init__(self, program):
        self.program, self.lines, self.names = program, [], {}

    def ref(self, node) -> str:
        if node.op == "const":
            return _literal(node.value)
        return self.names[node.id]

    def expr(self, node) -> str:
        args = [self.ref(a) for a in node.args]
        if node.op == "input":
            name = node.attrs["name"]
            return f"{name}[row * k + j]" if varies(node) else f"{name}[row]"
        if node.op == "param":
            return node.attrs["name"]
        table = _UNARY if len(args) == 1 else _BINARY if len(args) == 2 else _TERNARY
        return table[node.op].format(*args)

    def elementwise(self, roots, indent):
        """Statements for the varying nodes ``roots`` depend on (within the current column loop)."""
        local = {}
        for node in self.program.order_of(roots):
            if varies(node) and node.op not in REDUCTIONS and node.id not in local:
                local[node.id] = name = f"e{node.id}"
                self.names[node.id] = name
                self.lines.append(f"{indent}const float {name} = {self.expr(node)};")
        return local

    def row_values(self, indent):
        for node in self.program.order:
            if varies(node) or node.op == "const":
                continue
            name = self.names[node.id] = f"r{node.id}"
            if node.op not in REDUCTIONS:
                self.lines.append(f"{indent}const float {name} = {self.expr(node)};")
                continue
            arg = node.args[0]
            if not varies(arg):  # a reduction over one column is the value itself
                self.lines.append(f"{indent}const float {name} = {self.ref(arg)};")
                continue
            self.lines.append(f"{indent}float {name} = 0.0f;")
            self.lines.append(f"{indent}for (int j = 0; j < k; ++j) {{")
            local = self.elementwise([arg], indent + "    ")
            value = self.ref(arg)
            update = {"sum": f"{name} += {value};", "mean": f"{name} += {value};",
                      "max": f"{name} = j == 0 ? {value} : fmaxf({name}, {value});",
                      "min": f"{name} = j == 0 ? {value} : fminf({name}, {value});"}[node.op]
            self.lines.append(f"{indent}    {update}")
            self.lines.append(f"{indent}}}")
            if node.op == "mean":
                self.lines.append(f"{indent}{name} *= {_literal(1.0 / node.attrs['cols'])};")
            for key in local:
                del self.names[key]


def kernel_source(program) -> str:
    """The full source (common.cuh expanded: NVRTC needs no include path) of ``program.kernel_name``."""
    w = _Writer(program)
    body = "        "
    w.row_values(body)
    varying = [node for _, node in program.outputs if varies(node)]
    if varying:
        w.lines.append(f"{body}for (int j = 0; j < k; ++j) {{")
        w.elementwise(varying, body + "    ")
    for name, node in program.outputs:
        if varies(node):
            w.lines.append(f"{body}    {name}[row * k + j] = {w.ref(node)};")
    if varying:
        w.lines.append(f"{body}}}")
    for name, node in program.outputs:
        if not varies(node):
            w.lines.append(f"{body}{name}[row] = {w.ref(node)};")
    if program.row_sum is not None:
        w.lines.append(f"{body}value = {w.ref(program.row_sum)};")
    params = [f"const float* __restrict__ {name}" for name in program.input_names]
    params += [f"float* __restrict__ {name}" for name, _ in program.outputs]
    params += ["double* acc"] if program.row_sum is not None else []
    params += ["int n", "int k"]
    params += ["int slot", "double acc_scale"] if program.row_sum is not None else []
    params += [f"float {name}" for name in program.param_names]
    tail = ["    value = warp_sum(value);",
            "    if ((threadIdx.x & 31) == 0) atomicAdd(acc + slot, (double)value * acc_scale);"]
    common = kernels.source(kernels.kernel_dir() / "common.cuh").replace("#pragma once", "")
    return "\n".join([
        f"// Generated by mlp_gpu.tracing from {program.label}; do not edit.",
        "// Layout: every array is row-major float32, (n, k) or (n, 1); acc is float64, only added to:",
        "// acc[slot] += acc_scale * (sum of the row values). Launch: the ROW LAUNCH of kernels/loss.cu",
        "// (1-D grid, grid * block >= n, whole warps; no thread returns before the warp sum).",
        common,
        f'extern "C" __global__ void {program.kernel_name}({", ".join(params)}) {{',
        "    long long row = global_index();",
        "    float value = 0.0f;",
        "    if (row < n) {",
        *w.lines,
        "    }",
        *(tail if program.row_sum is not None else []),
        "}",
        ""])
