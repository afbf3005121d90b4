"""A functional model's wiring as data, and back: what its config (ours in .h5, Keras' in .keras) stores.

``wiring(model)`` lists, per layer in ``model.layers`` order, the calls of that layer inside the model:
each the list of ``(source layer name, source call index)`` it reads, whether the layer took a list
(merge layers), and ``training`` as passed. Call indices count the calls inside this model only, as
Keras' ``inbound_nodes`` do. ``rebuild`` replays such a description with fresh layers.
"""
from __future__ import annotations

from ..layers.base import layer_from_config
from ..layers.core import Input


def wiring(model) -> list[tuple]:
    """[(layer, [(refs, takes_list, training), ...]), ...] and the model's input and output refs."""
    g = model._graph
    local = {}  # id(node) -> its index among the layer's calls in this model
    for node in [t.node for t in g.inputs] + g.nodes:
        calls = local.setdefault(id(node.layer), [])
        calls.append(id(node))

    def ref(t):
        return t.node.layer.name, local[id(t.node.layer)].index(id(t.node))
    entries = []
    for layer in model.layers:
        calls = [n for n in ([t.node for t in g.inputs] + g.nodes) if n.layer is layer and not isinstance(layer, Input)]
        entries.append((layer, [([ref(t) for t in n.inputs], n.takes_list, n.training) for n in calls]))
    return entries, [ref(t) for t in g.inputs], [ref(t) for t in g.outputs]


def rebuild(entries, input_refs, output_refs, make_model):
    """Call fresh layers as described. ``entries``: [(layer, [(refs, takes_list, training), ...])] in any
    order where each call's sources come from earlier passes; returns ``make_model(inputs, outputs)``."""
    tensors = {}  # (layer name, call index) -> its output tensor
    layers = {}
    for layer, _ in entries:
        if not isinstance(layer.name, str) or layer.name in layers:
            raise ValueError(f"model config: layer names must be unique strings, got {layer.name!r} twice or none")
        layers[layer.name] = layer
        if isinstance(layer, Input):
            tensors[(layer.name, 0)] = layer.output
    pending = [(layer, k, call) for layer, calls in entries for k, call in enumerate(calls)]
    while pending:  # each pass makes every call whose sources exist; a pass without progress is an error
        left = []
        for layer, k, (refs, takes_list, training) in pending:
            missing = [r for r in refs if tuple(r) not in tensors]
            if missing:
                left.append((layer, k, (refs, takes_list, training)))
                continue
            sources = [tensors[tuple(r)] for r in refs]
            tensors[(layer.name, k)] = layer(sources if takes_list else sources[0], training=training)
        if len(left) == len(pending):
            refs = sorted({tuple(r) for _, _, (rs, _, _) in left for r in rs if tuple(r) not in tensors})
            raise ValueError(f"model config: calls read tensors no layer makes: {refs}")
        pending = left

    def find(r, arg):
        if tuple(r) not in tensors:
            raise ValueError(f"model config: {arg} names {list(r)}, which no layer makes")
        return tensors[tuple(r)]
    return make_model([find(r, "input_layers") for r in input_refs], [find(r, "output_layers") for r in output_refs])


def model_config(model) -> dict:
    """Our config of a graph (.h5, clone_model): per layer its config and ``inbound_nodes`` (per call:
    the [layer, call] pairs it reads, whether a list, training); input and output [layer, call] pairs."""
    entries, in_refs, out_refs = wiring(model)
    layers = [{"class_name": type(layer).__name__, "config": layer.get_config(),
               "inbound_nodes": [[[list(r) for r in refs], takes_list, training]
                                 for refs, takes_list, training in calls]} for layer, calls in entries]
    return {"name": model.name, "class_name": "Functional", "layers": layers,
            "input_layers": [list(r) for r in in_refs], "output_layers": [list(r) for r in out_refs]}


def model_from_config(cls, config, backend=None):
    """``cls(inputs, outputs)`` from ``model_config`` output, every entry checked before use."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list) \
            or "input_layers" not in config or "output_layers" not in config:
        raise ValueError("model config: expected a dict with 'layers', 'input_layers' and 'output_layers'")
    entries = []
    for entry in config["layers"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict) \
                or not isinstance(entry.get("inbound_nodes", []), list):
            raise ValueError(f"model config: bad layer entry {entry!r:.120}")
        layer = layer_from_config(entry.get("class_name"), entry["config"])
        calls = []
        for node in entry.get("inbound_nodes", []):
            if not (isinstance(node, list) and len(node) == 3 and isinstance(node[0], list)
                    and node[2] in (None, True, False)):
                raise ValueError(f"model config: layer {layer.name!r} has a bad inbound node {node!r:.120}")
            calls.append(([tuple(r) for r in node[0]], bool(node[1]), node[2]))
        entries.append((layer, calls))
    return rebuild(entries, [tuple(r) for r in config["input_layers"]], [tuple(r) for r in config["output_layers"]],
                   lambda i, o: cls(i, o, name=config.get("name"), backend=backend))


def summary_rows(model) -> list[tuple]:
    """Keras' summary table of a graph: each layer's output shape, parameters and "Connected to" (the
    tensors each call reads, as ``layer[call][0]``)."""
    entries, _, _ = wiring(model)
    rows = [("Layer (type)", "Output Shape", "Param #", "Connected to")]
    for layer, calls in entries:
        n = sum(int(w.size) for w in layer.weight_views) if layer.computes else 0
        sources = [f"{name}[{k}][0]" for refs, _, _ in calls for name, k in refs]
        shape = str((None,) + tuple(layer.shape if isinstance(layer, Input) else layer.shape_out))
        rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{n:,}", ", ".join(sources) or "-"))
    return rows
