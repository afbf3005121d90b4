"""ONNX export: ``model.export("m.onnx", format="onnx")``, built with the ``onnx`` package's helpers.

The graph takes ``input`` of shape (batch, *input_shape) float32 (the batch dimension is dynamic) and
gives ``output`` (batch, units). Each layer class has one entry in ``EXPORTERS``: a function that adds
the layer's nodes and weights and returns the name of its output tensor. A new layer adds one entry::

    @exporter("Lambda")
def _lambda(layer, graph, x):
    return export_program(graph, layer._forward, x, layer.name)


@exporter("Dropout")
    def _dropout(layer, graph, x):
        return x  # the identity at inference

uint8 pixels: our ``fit``/``predict`` take uint8 rows and scale them by 1/255 on the device. An
ONNX model is a plain function of its input, so by default it takes float32 inputs already scaled, as a
Keras-exported model does. ``input_dtype="uint8"`` puts the scaling into the graph (Cast, then Mul by
1/255), so the ONNX model takes raw pixels exactly as our ``predict`` does.
"""
from __future__ import annotations

import numpy as np

from .. import activations
from .. import __version__
from ..backend.numpy.layer_ops import NORMALIZATION_EPSILON
from ..layers.layer_normalization import UNIT_NORM_FLOOR
from .files import atomic_write_bytes
from .onnx_activation import EXPORTERS as ACTIVATION_EXPORTERS
from .onnx_traced import export_program

OPSET = 21  # a current opset that ONNX Runtime (>= 1.18) runs
EXPORTERS = dict(ACTIVATION_EXPORTERS)


def exporter(class_name):
    """Register the ONNX export of a layer class (by its class name)."""
    def register(fn):
        EXPORTERS[class_name] = fn
        return fn
    return register


class Graph:
    """Nodes and initializers being collected, with unique tensor names."""

    def __init__(self, model):
        self.model = model
        self.nodes, self.initializers = [], []
        self._names = set()

    def name(self, base):
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def weight(self, base, array, dtype=np.float32):
        """Add an initializer (float32 unless ``dtype``) holding ``array`` (a host or device array); return its name."""
        from onnx import numpy_helper

        host = np.asarray(self.model.backend.to_host(array), dtype)
        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(host, name))
        return name

    def node(self, op, inputs, base, **attrs):
        """Add one node; return the name of its (single) output."""
        from onnx import helper

        out = self.name(base)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def activation(self, x, activation, base):
        if activation == "linear":
            return x
        entry = activations.get(activation)
        if callable(entry.onnx):  # an activation built of several operators (silu: Sigmoid then Mul)
            return entry.onnx(self, x, f"{base}/{activation}")
        if entry.onnx is None:
            raise ValueError(f"export: activation {activation!r} has no ONNX form here")
        op, attrs, constants = (*entry.onnx, ())[:3]
        inputs = [x] + [self.weight(f"{base}/{activation}_{i}", np.float32(c)) for i, c in enumerate(constants)]
        return self.node(op, inputs, f"{base}/{activation}", **attrs)


@exporter("Input")
def _input(layer, graph, x):
    return x  # the graph input already has the declared shape


exporter("InputLayer")(_input)


@exporter("Flatten")
def _flatten(layer, graph, x):
    return graph.node("Flatten", [x], f"{layer.name}/flatten", axis=1)


@exporter("Dense")
def _dense(layer, graph, x):
    kernel = graph.weight(f"{layer.name}/kernel", layer.kernel)
    inputs = [x, kernel] + ([graph.weight(f"{layer.name}/bias", layer.bias)] if layer.use_bias else [])
    z = graph.node("Gemm", inputs, f"{layer.name}/gemm")  # Gemm's C is optional: use_bias=False has none
    if getattr(layer, "activation_fn", None) is not None:  # a traced Python activation: its recorded ops
        return export_program(graph, layer._act_forward, z, f"{layer.name}/{layer.activation}")
    return graph.activation(z, layer.activation, layer.name)


@exporter("Lambda")
def _lambda(layer, graph, x):
    return export_program(graph, layer._forward, x, layer.name)


@exporter("Dropout")
def _dropout(layer, graph, x):
    return x  # the identity at inference


@exporter("BatchNormalization")
def _batch_normalization(layer, graph, x):
    """Inference form, folded on the host: x * scale + shift with scale = gamma / sqrt(moving_var + eps)."""
    host = layer.backend.to_host
    scale = 1 / np.sqrt(host(layer.moving_variance).astype(np.float64) + layer.epsilon)
    if layer.gamma is not None:
        scale = scale * host(layer.gamma)
    shift = -host(layer.moving_mean) * scale + (host(layer.beta) if layer.beta is not None else 0)
    y = graph.node("Mul", [x, graph.weight(f"{layer.name}/scale", scale)], f"{layer.name}/mul")
    return graph.node("Add", [y, graph.weight(f"{layer.name}/shift", shift)], f"{layer.name}/add")


@exporter("Normalization")
def _normalization(layer, graph, x):
    """(x - mean) / max(sqrt(variance), 1e-7); invert: x * that + mean."""
    host = layer.backend.to_host
    std = np.maximum(np.sqrt(host(layer.variance)), NORMALIZATION_EPSILON)
    mean = graph.weight(f"{layer.name}/mean", host(layer.mean))
    std = graph.weight(f"{layer.name}/std", std)
    if layer.invert:
        return graph.node("Add", [graph.node("Mul", [x, std], f"{layer.name}/mul"), mean], f"{layer.name}/add")
    return graph.node("Div", [graph.node("Sub", [x, mean], f"{layer.name}/sub"), std], f"{layer.name}/div")


for _kind in ("Identity", "GaussianNoise", "GaussianDropout", "AlphaDropout"):
    exporter(_kind)(_dropout)  # the identity at inference too


@exporter("Reshape")
def _reshape(layer, graph, x):
    shape = graph.weight(f"{layer.name}/shape", np.array([0, *layer.shape_out]), np.int64)  # 0: the batch, kept
    return graph.node("Reshape", [x, shape], f"{layer.name}/reshape")


@exporter("Rescaling")
def _rescaling(layer, graph, x):
    y = graph.node("Mul", [x, graph.weight(f"{layer.name}/scale", np.float32(layer.scale))], f"{layer.name}/mul")
    return graph.node("Add", [y, graph.weight(f"{layer.name}/offset", np.float32(layer.offset))], f"{layer.name}/add")


def _reduce(graph, op, x, axes, base):
    """ReduceMean/ReduceSum over ``axes`` keeping them; ReduceMean takes its axes as an input from opset 18."""
    if op == "ReduceMean" and graph.opset < 18:
        return graph.node(op, [x], base, axes=list(axes), keepdims=1)
    return graph.node(op, [x, graph.weight(f"{base}/axes", np.array(axes), np.int64)], base, keepdims=1)


@exporter("LayerNormalization")
def _layer_normalization(layer, graph, x):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over the layer's axes (any of them, not only trailing)."""
    axes, name = [a + 1 for a in layer._axes], layer.name
    c = graph.node("Sub", [x, _reduce(graph, "ReduceMean", x, axes, f"{name}/mean")], f"{name}/centered")
    var = _reduce(graph, "ReduceMean", graph.node("Mul", [c, c], f"{name}/square"), axes, f"{name}/variance")
    std = graph.node("Sqrt", [graph.node("Add", [var, graph.weight(f"{name}/epsilon", np.float32(layer.epsilon))],
                                         f"{name}/var_eps")], f"{name}/std")
    y = graph.node("Div", [c, std], f"{name}/normalized")
    host = layer.backend.to_host
    if layer.gamma is not None:
        gamma = graph.weight(f"{name}/gamma", host(layer.gamma).reshape(layer._broadcast))
        y = graph.node("Mul", [y, gamma], f"{name}/scaled")
    if layer.beta is not None:
        y = graph.node("Add", [y, graph.weight(f"{name}/beta", host(layer.beta).reshape(layer._broadcast))],
                       f"{name}/shifted")
    return y


@exporter("UnitNormalization")
def _unit_normalization(layer, graph, x):
    """x / sqrt(max(sum(x^2), 1e-24)) over the layer's axes: Keras' x * min(rsqrt(sum(x^2)), 1e12)."""
    axes, name = [a + 1 for a in layer._axes], layer.name
    s = _reduce(graph, "ReduceSum", graph.node("Mul", [x, x], f"{name}/square"), axes, f"{name}/sum")
    s = graph.node("Max", [s, graph.weight(f"{name}/floor", np.float32(UNIT_NORM_FLOOR))], f"{name}/floored")
    return graph.node("Div", [x, graph.node("Sqrt", [s], f"{name}/norm")], f"{name}/normalized")


# Merge layers (a functional graph): the exporter gets the list of its inputs' tensor names.
_VARIADIC = {"Add": "Sum", "Average": "Mean", "Maximum": "Max", "Minimum": "Min"}


def _variadic(layer, graph, xs):
    return graph.node(_VARIADIC[type(layer).__name__], xs, f"{layer.name}/{_VARIADIC[type(layer).__name__].lower()}")


for _kind in _VARIADIC:
    exporter(_kind)(_variadic)


@exporter("Subtract")
def _subtract(layer, graph, xs):
    return graph.node("Sub", xs, f"{layer.name}/sub")


@exporter("Multiply")
def _multiply(layer, graph, xs):
    out = xs[0]
    for x in xs[1:]:
        out = graph.node("Mul", [out, x], f"{layer.name}/mul")
    return out


@exporter("Concatenate")
def _concatenate(layer, graph, xs):
    return graph.node("Concat", xs, f"{layer.name}/concat", axis=-1)


def _input_stage(graph, input_dtype, name="input"):
    """The graph input and the tensor the first layer reads (scaled to float32 for uint8 pixels)."""
    from onnx import TensorProto

    if input_dtype == "float32":
        graph.name(name)
        return TensorProto.FLOAT, name
    graph.name(name)
    as_float = graph.node("Cast", [name], f"{name}/cast", to=TensorProto.FLOAT)
    scale = graph.weight(f"{name}/scale", np.float32(1 / 255))
    return TensorProto.UINT8, graph.node("Mul", [as_float, scale], f"{name}/scaled")


def _exporter_of(layer):
    kind = type(layer).__name__
    if kind not in EXPORTERS:
        raise ValueError(f"export: layer {layer.name!r} ({kind}) has no ONNX exporter; supported: {sorted(EXPORTERS)}")
    return EXPORTERS[kind]


def _graph_body(model, graph, input_dtype):
    """A functional graph's nodes: ONNX inputs named as the model's (``input`` for one), outputs likewise."""
    from onnx import TensorProto, helper

    g = model._graph
    names = ["input"] if len(g.inputs) == 1 else model.input_names
    tensor, inputs = {}, []
    for t, name in zip(g.inputs, names):
        elem_type, tensor[id(t)] = _input_stage(graph, input_dtype, name)
        inputs.append(helper.make_tensor_value_info(name, elem_type, ["batch", *t.sample_shape]))
    for node in g.nodes:
        xs = [tensor[id(t)] for t in node.inputs]
        tensor[id(node.output)] = _exporter_of(node.layer)(node.layer, graph, xs if node.layer.merges else xs[0])
    out_names = ["output"] if len(g.outputs) == 1 else model.output_names
    outputs = []
    for t, name in zip(g.outputs, out_names):
        graph.node("Identity", [tensor[id(t)]], name)
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *t.sample_shape]))
    return inputs, outputs


def to_onnx(model, input_dtype="float32", opset_version=None):
    """The model as an ``onnx.ModelProto``, checked by ``onnx.checker``."""
    import onnx
    from onnx import TensorProto, helper

    model._require_built("export")
    if input_dtype not in ("float32", "uint8"):
        raise ValueError(f"input_dtype: expected 'float32' or 'uint8', got {input_dtype!r}")
    opset = OPSET if opset_version is None else opset_version
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 13:
        raise ValueError(f"opset_version: expected an int >= 13 (Softmax over the last axis), got {opset!r}")
    graph = Graph(model)
    graph.opset = opset
    if getattr(model, "_general", False):
        inputs, outputs = _graph_body(model, graph, input_dtype)
    else:
        elem_type, x = _input_stage(graph, input_dtype)
        for layer in model.layers:
            x = _exporter_of(layer)(layer, graph, x)
        x = graph.node("Identity", [x], "output")
        inputs = [helper.make_tensor_value_info("input", elem_type, ["batch", *model.input_shape])]
        outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", model.output_units])]
    proto = helper.make_model(helper.make_graph(graph.nodes, model.name, inputs, outputs, graph.initializers),
                              opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="mlp_gpu", producer_version=__version__)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, filepath, input_dtype="float32", opset_version=None, verbose=None):
    """Write ``model`` to ``filepath`` as an ONNX model (see the module docstring)."""
    atomic_write_bytes(filepath, to_onnx(model, input_dtype, opset_version).SerializeToString())
    if verbose or verbose is None:
        print(f"Saved the ONNX model to {filepath} (input 'input', output 'output')")


def export_model(model, filepath, format="onnx", verbose=None, input_signature=None, **kwargs):
    """``Sequential.export``: Keras' arguments, checked; only the ONNX format is written."""
    if format != "onnx":
        raise ValueError(f"format: expected 'onnx' (the only export format of mlp_gpu), got {format!r}")
    if input_signature is not None:
        raise ValueError("input_signature: expected None; the input is (batch, *input_shape) float32, "
                         "or uint8 pixels with input_dtype='uint8'")
    unknown = set(kwargs) - {"opset_version", "input_dtype"}
    if unknown:
        raise TypeError(f"export: unexpected arguments {sorted(unknown)}; accepted: opset_version, input_dtype")
    export_onnx(model, filepath, verbose=verbose, **kwargs)
