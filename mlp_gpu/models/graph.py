"""The graph of a functional model: its nodes in topological order, the per-batch buffers, and the
forward and backward passes over them.

Tensors are numbered: the inputs first, then each node's output in topological order. The backward
pass runs the nodes in reverse order; a tensor read by several nodes (fan-out) gets the first
gradient written into its buffer and the others added through a scratch buffer, and a layer called
more than once (shared weights) adds each call's weight gradients to the first's in the flat buffer.
"""
from __future__ import annotations

import numpy as np

from ..layers.base import Layer
from ..layers.core import Dense, Input
from ..layers.node import KerasTensor, symbolic
from . import trainable as trainable_mod


def _tensors(value, arg) -> list[KerasTensor]:
    """A tensor, or a list/tuple/dict of them, as a list (Keras' flattening order for a dict: its values)."""
    if isinstance(value, dict):
        value = list(value.values())
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{arg}: expected at least one symbolic tensor, got an empty {type(value).__name__}")
    out = []
    for i, item in enumerate(items):
        t = symbolic(item)
        if t is None:
            raise TypeError(f"{arg}[{i}]: expected a symbolic tensor (mlp_gpu.Input(...) or a layer's output), got "
                            f"{type(item).__name__}")
        out.append(t)
    return out


class Graph:
    """The nodes between ``inputs`` and ``outputs``, in topological order, checked."""

    def __init__(self, inputs, outputs):
        self.inputs, self.outputs = _tensors(inputs, "inputs"), _tensors(outputs, "outputs")
        for arg, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            if len({id(t) for t in tensors}) != len(tensors):
                raise ValueError(f"{arg}: the same tensor appears twice")
        for i, t in enumerate(self.inputs):
            if not isinstance(t.node.layer, Input):
                raise ValueError(f"inputs[{i}]: expected a tensor made by mlp_gpu.Input(...), got the output of "
                                 f"{type(t.node.layer).__name__} layer {t.node.layer.name!r}")
        for i, t in enumerate(self.outputs):
            if isinstance(t.node.layer, Input):
                raise ValueError(f"outputs[{i}]: an Input cannot be an output; put a layer after it")
        post, first_seen = self._order()
        self.nodes = [n for n in post if not isinstance(n.layer, Input)]
        self.tid = {id(t): k for k, t in enumerate(self.inputs)}
        for node in self.nodes:
            self.tid[id(node.output)] = len(self.tid)
        self.consumers = [0] * len(self.tid)
        for node in self.nodes:
            for t in node.inputs:
                self.consumers[self.tid[id(t)]] += 1
        self.layers: list[Layer] = _keras_layer_order(post, first_seen, self.inputs)  # Keras' model.layers

    def _order(self):
        """The nodes reachable from the outputs, each after its inputs (Keras' depth-first post-order,
        Input nodes included), and each layer's first-visit index (Keras' ``_build_map``)."""
        inputs = {id(t) for t in self.inputs}
        post, done, first_seen = [], set(), {}
        stack = [(t, False) for t in reversed(self.outputs)]
        while stack:
            t, expanded = stack.pop()
            node = t.node
            if id(node) in done:
                continue
            first_seen.setdefault(id(node.layer), len(first_seen))
            if isinstance(node.layer, Input):
                if id(t) not in inputs:
                    raise ValueError(f"outputs: they depend on Input {node.layer.name or t.name!r}, which is not "
                                     "in inputs; pass every Input the outputs are computed from")
                done.add(id(node))
                post.append(node)
            elif expanded:
                done.add(id(node))
                post.append(node)
            else:
                stack.append((t, True))
                stack.extend((x, False) for x in reversed(node.inputs) if id(x.node) not in done)
        return post, first_seen

    @property
    def is_chain(self) -> bool:
        """One input, one output, each layer called once on the previous node's output: a Sequential."""
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            return False
        previous = self.inputs[0]
        for node in self.nodes:
            if node.takes_list or len(node.inputs) != 1 or node.inputs[0] is not previous \
                    or len(node.layer._inbound_nodes) != 1 or node.training is not None:
                return False
            previous = node.output
        return previous is self.outputs[0]

    def needs_grad(self) -> list[bool]:
        """Per tensor: whether a gradient must reach it (it depends on some weight)."""
        needs = [False] * len(self.tid)
        for node in self.nodes:
            needs[self.tid[id(node.output)]] = bool(node.layer.param_shapes()) or any(
                needs[self.tid[id(t)]] for t in node.inputs)
        return needs


class GraphWorkspace:
    """Per-batch buffers of a graph: x (the inputs side by side) and y as the data sets gather them,
    each input's own columns, each tensor's value and gradient, each node's layer scratch, fan-out
    scratch, and per output its targets (several outputs)."""

    def __init__(self, backend, rows, graph: Graph, in_widths, target_specs, packed_y, dtype, _views=None):
        if _views is not None:
            (self.x, self.y, self.value, self.grad, self.scratch, self.aux, self._per_row, self.targets,
             self.gsave, self.loss_term) = _views
            self.rows = rows
            return
        self.rows = rows
        empty = backend.empty
        self.x = empty((rows, sum(in_widths)), dtype)
        self.y = empty((rows, packed_y), dtype) if packed_y else empty((rows,) + target_specs[0][0],
                                                                       target_specs[0][1])
        widths = list(in_widths) + [int(np.prod(n.output.sample_shape)) for n in graph.nodes]
        self.value = ([self.x] if len(in_widths) == 1 else [empty((rows, w), dtype) for w in in_widths])
        self.grad = [None] * len(in_widths)
        for k, node in enumerate(graph.nodes):
            w = widths[len(in_widths) + k]
            if not node.layer.computes:  # Flatten: the same values; its own gradient buffer
                self.value.append(self.value[graph.tid[id(node.inputs[0])]])
            else:
                self.value.append(empty((rows, w), dtype))
            self.grad.append(empty((rows, w), dtype))
        self.scratch = [empty((rows, w), dtype) if n > 1 else None for w, n in zip(widths, graph.consumers)]
        self.aux, self._per_row = [], []
        for node in graph.nodes:
            spec = node.layer.buffers()
            self.aux.append({k: empty(((rows,) if per_row else ()) + tuple(shape), dtype)
                             for k, (shape, per_row) in spec.items()})
            self._per_row.append({k for k, (_, per_row) in spec.items() if per_row})
        self.targets = [empty((rows,) + shape, tdtype) for shape, tdtype in target_specs] if packed_y else [self.y]
        sizes = [sum(int(np.prod(s)) for s in layer.param_shapes()) for layer in graph.layers]
        self.gsave = backend.empty((max(sizes, default=0),), dtype)  # a shared layer's earlier gradients
        self.loss_term = backend.empty((1,), np.float64)  # one output's weighted loss sum, on its way to the total

    def view(self, n: int) -> "GraphWorkspace":
        def cut(items):
            return [None if v is None else v[:n] for v in items]
        aux = [{k: (v[:n] if k in rows else v) for k, v in bufs.items()} for bufs, rows in zip(self.aux, self._per_row)]
        views = (self.x[:n], self.y[:n], cut(self.value), cut(self.grad), cut(self.scratch), aux, self._per_row,
                 cut(self.targets), self.gsave, self.loss_term)
        return GraphWorkspace(None, n, None, None, None, None, None, _views=views)


def forward(model, graph: Graph, ws: GraphWorkspace, logits: bool, training: bool, fused: list[bool]):
    """Run the nodes in order; ``fused[k]``: output k is left as logits (its loss applies the activation)."""
    be = model.backend
    if len(graph.inputs) > 1:
        for k, (a, b) in enumerate(zip(model._in_cuts, model._in_cuts[1:])):
            be.xp.copyto(ws.value[k], ws.x[:, a:b])
    fused_at = {graph.tid[id(t)] for t, f in zip(graph.outputs, fused) if f and logits}
    for k, node in enumerate(graph.nodes):
        layer, out = node.layer, graph.tid[id(node.output)]
        if not layer.computes:
            continue
        xs = [ws.value[graph.tid[id(t)]] for t in node.inputs]
        train = training if node.training is None else node.training
        extra = {"activation": "linear"} if out in fused_at else {}
        if train and id(layer) in model._inference_ids:  # a frozen BatchNormalization (models/trainable.py)
            trainable_mod.frozen_bn_forward(be, layer, xs[0], ws.value[out], ws.aux[k])
        else:
            layer.forward(be, xs if layer.merges else xs[0], ws.value[out], train, ws.aux[k], **extra)
    if any(getattr(n.layer, "uses_rng", False) and (training if n.training is None else n.training)
           for n in graph.nodes):  # the next pass draws fresh masks (also where a call forces training=True)
        be.advance(model.rng_counter, 1)
    return [ws.value[graph.tid[id(t)]] for t in graph.outputs]


def backward_plan(graph: Graph, fused: list[bool]):
    """Per node in reverse order: (node index, per input 'write' / 'add' / None, weights shared-added?,
    fused output?). Precomputed once: the order of gradient writes never changes."""
    needs = graph.needs_grad()
    written = {graph.tid[id(t)] for t in graph.outputs}
    fused_at = {graph.tid[id(t)] for t, f in zip(graph.outputs, fused) if f}
    plan, layers_done = [], set()
    for k in range(len(graph.nodes) - 1, -1, -1):
        node = graph.nodes[k]
        out = graph.tid[id(node.output)]
        has_params = bool(node.layer.param_shapes())
        if not (has_params or any(needs[graph.tid[id(t)]] for t in node.inputs)):
            continue
        modes = []
        for t in node.inputs:
            tid = graph.tid[id(t)]
            if not needs[tid]:
                modes.append(None)
            elif tid in written:
                modes.append("add")
            else:
                written.add(tid)
                modes.append("write")
        shared = has_params and id(node.layer) in layers_done
        layers_done.add(id(node.layer))
        plan.append((k, modes, shared, out in fused_at))
    return plan


def backward(model, graph: Graph, ws: GraphWorkspace, plan) -> None:
    """Fill the flat gradient buffer from the outputs' gradients (as left by the loss)."""
    be = model.backend
    xp = be.xp
    for k, modes, shared, fused in plan:
        node = graph.nodes[k]
        layer, out = node.layer, graph.tid[id(node.output)]
        tids = [graph.tid[id(t)] for t in node.inputs]
        dxs = [None if m is None else (ws.grad[t] if m == "write" else ws.scratch[t]) for m, t in zip(modes, tids)]
        if shared:
            a, b = layer._param_range
            saved = ws.gsave[:b - a]
            xp.copyto(saved, model.grads[a:b])
        dy = ws.grad[out]
        if not layer.computes:
            if dxs[0] is not None:
                xp.copyto(dxs[0], dy)
        elif id(layer) in model._inference_ids:
            trainable_mod.frozen_bn_backward(be, layer, dy, dxs[0], ws.aux[k])
        elif layer.merges:
            layer.backward(be, [ws.value[t] for t in tids], ws.value[out], dy, dxs, ws.aux[k])
        else:
            extra = {"activation": "linear"} if fused else {}
            layer.backward(be, ws.value[tids[0]], ws.value[out], dy, dxs[0], ws.aux[k], **extra)
        if shared:
            xp.add(model.grads[a:b], saved, out=model.grads[a:b])
        for m, t in zip(modes, tids):
            if m == "add":
                xp.add(ws.grad[t], ws.scratch[t], out=ws.grad[t])


def _keras_layer_order(post, first_seen, inputs) -> list:
    """Keras' ``map_graph`` order of the layers: by depth from the outputs (deepest first), ties by
    first visit; unused inputs last at depth 0. Weight files and optimizer state follow this order."""
    node_depth, layer_depth, layers = {}, {}, {}
    for node in reversed(post):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        layers[id(node.layer)] = node.layer
        for t in node.inputs:
            node_depth[id(t.node)] = max(depth + 1, node_depth.get(id(t.node), 0))
    for t in inputs:
        if id(t.node.layer) not in layer_depth:
            layer_depth[id(t.node.layer)], layers[id(t.node.layer)] = 0, t.node.layer
            first_seen.setdefault(id(t.node.layer), -1)
    order = sorted(layers, key=lambda k: (-layer_depth[k], first_seen[k]))
    return [layers[k] for k in order]


def output_activation(tensor: KerasTensor) -> str:
    layer = tensor.node.layer
    return layer.activation if isinstance(layer, Dense) else "linear"


def output_units(tensor: KerasTensor) -> int:
    return int(np.prod(tensor.sample_shape))
