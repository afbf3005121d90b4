"""A functional model's wiring as data, and back: what its config (ours in .h5, Keras' in .keras) stores.

``wiring(model)`` lists, per layer in ``model.layers`` order, the calls of that layer inside the model:
each the list of ``(source layer name, source call index)`` it reads, whether the layer took a list
(merge layers), and ``training`` as passed. Call indices count the calls inside this model only, as
Keras' ``inbound_nodes`` do. ``rebuild`` replays such a description with fresh layers.
"""
from __future__ import annotations

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
