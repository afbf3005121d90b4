"""ONNX exports of the activation layers (layers/activation.py), by class name, for ``io/onnx.EXPORTERS``:
a table entry as the table says (``Graph.activation``), a traced one as its recorded ops, PReLU as PRelu
with its learned slope. Each is ``fn(layer, graph, x) -> output name``, as every exporter."""
from __future__ import annotations

from .onnx_traced import export_program


def _activation(layer, graph, x):
    if layer._fn is not None:  # parameters other than the table's: the traced program's ops
        return export_program(graph, layer._forward, x, layer.name)
    return graph.activation(x, layer.activation, layer.name)


def _prelu(layer, graph, x):
    return graph.node("PRelu", [x, graph.weight(f"{layer.name}/alpha", layer.alpha)], f"{layer.name}/prelu")


EXPORTERS = {"Activation": _activation, "ReLU": _activation, "LeakyReLU": _activation, "ELU": _activation,
             "Softmax": _activation, "PReLU": _prelu}
