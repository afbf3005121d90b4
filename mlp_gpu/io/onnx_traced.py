"""ONNX nodes for traced functions: a Lambda layer and a Dense layer's Python activation export as the
ops their traced graph recorded (``mlp_gpu.tracing``), one ONNX node (or two) per op, so the
exported model computes what ``predict`` does without any Python code."""
from __future__ import annotations

import numpy as np

_SAME = {"abs": "Abs", "sqrt": "Sqrt", "exp": "Exp", "log": "Log", "sign": "Sign", "tanh": "Tanh",
         "sigmoid": "Sigmoid", "softplus": "Softplus", "relu": "Relu", "negative": "Neg", "add": "Add",
         "subtract": "Sub", "multiply": "Mul", "divide": "Div", "power": "Pow", "maximum": "Max", "minimum": "Min",
         "greater": "Greater", "greater_equal": "GreaterOrEqual", "less": "Less", "less_equal": "LessOrEqual",
         "equal": "Equal", "logical_and": "And", "logical_or": "Or", "logical_not": "Not", "where": "Where"}
_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin"}
_BOOL_ARGS = {"logical_and", "logical_or", "logical_not"}  # ONNX wants bool tensors there (and Where's first)


def _cast(graph, name, node, want_bool, base):
    from onnx import TensorProto

    if (node.dtype == "bool") == want_bool:
        return name
    return graph.node("Cast", [name], f"{base}/cast", to=TensorProto.BOOL if want_bool else TensorProto.FLOAT)


def _reduce(graph, node, arg, base):
    op, keep = _REDUCE[node.op], int(node.attrs["keepdims"])
    if op == "ReduceSum" or getattr(graph, "opset", 18) >= 18:  # axes became an input (13 for sum, 18 others)
        axes = graph.weight(f"{base}/axes", np.array([-1], np.int64), dtype=np.int64)
        return graph.node(op, [arg, axes], f"{base}/{node.op}", keepdims=keep)
    return graph.node(op, [arg], f"{base}/{node.op}", axes=[-1], keepdims=keep)


def export_program(graph, program, x, base):
    """Add the nodes of a traced forward program reading tensor ``x``; return its output's name."""
    names = {}
    for node in program.order:
        b = f"{base}/{node.op}"
        if node.op == "input":
            names[node.id] = x
            continue
        if node.op == "const":
            names[node.id] = graph.weight(f"{base}/const", np.float32(node.value))
            continue
        args = []
        for i, a in enumerate(node.args):
            want_bool = node.op in _BOOL_ARGS or (node.op == "where" and i == 0)
            args.append(_cast(graph, names[a.id], a, want_bool, b))
        if node.op in _SAME:
            out = graph.node(_SAME[node.op], args, b)
        elif node.op == "square":
            out = graph.node("Mul", [args[0], args[0]], b)
        elif node.op == "log1p":
            out = graph.node("Log", [graph.node("Add", [args[0], graph.weight(f"{b}/one", np.float32(1))], b)], b)
        elif node.op == "not_equal":
            out = graph.node("Not", [graph.node("Equal", args, b)], b)
        elif node.op == "clip":
            out = graph.node("Min", [graph.node("Max", args[:2], b), args[2]], b)
        elif node.op == "cast":
            out = _cast(graph, args[0], node.args[0], node.dtype == "bool", b)
        elif node.op in _REDUCE:
            out = _reduce(graph, node, args[0], b)
        else:
            raise ValueError(f"export: the traced op {node.op!r} of {program.label} has no ONNX form here")
        names[node.id] = out
    (_, result), = program.outputs
    return _cast(graph, names[result.id], result, False, f"{base}/out")
