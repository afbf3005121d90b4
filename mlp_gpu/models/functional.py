"""Model: Keras' functional API (``Model(inputs, outputs)``) and subclassed models (layers in
``__init__``, wiring in ``call``, traced once on symbolic inputs).

A graph that is a chain (one input, one output, each layer called once on the previous output) runs
as a Sequential, fused steps included. Any other graph runs through models/graph.py (the general
step; the backends' fused routes say so in ``backend.route``). Several inputs are laid side by side
in one (rows, features) array, several outputs' targets likewise: the data sets, streaming and
distributed training see one x and one y, and the model slices them per batch.
"""
from __future__ import annotations

import inspect

import numpy as np

from .. import losses as losses_mod, metrics as metrics_mod, optimizers
from .._checks import check_bool
from ..backend.base import ACC, ACC_SIZE
from ..layers.core import Input
from ..layers.node import symbolic
from ..naming import snake_case
from . import compile_options, graph as graph_mod, graph_config, keras_functional, packing, trainable as trainable_mod
from .sequential import Sequential

_LOSS = ACC["loss_sum"]





class _PackedTargets:
    """``model.loss`` of a model with several outputs: the data sets see one (rows, columns) float
    array of all outputs' targets side by side (each output's checked by its own loss first)."""

    sparse = False
    fused_activation = None

    def __init__(self, losses, names):
        self.losses, self.name = losses, "+".join(loss.name for loss in losses)
        self.names = names

    def accuracy_threshold(self):
        return 0.0

    def get_config(self):
        return {name: loss.get_config() for name, loss in zip(self.names, self.losses)}


def _per_output(value, names, arg, default=None):
    """compile's per-output argument as a list in output order: one value for all, a list/tuple with one
    entry per output, or a dict by output name (as Keras takes loss and loss_weights)."""
    n = len(names)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{arg}: keys {unknown} are not output names; the outputs are {names}")
        return [value.get(name, default) for name in names]
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{arg}: expected one entry per output ({n}: {names}), got {len(value)}")
        return list(value)
    return [value] * n


_MODEL_KEYWORDS = ("inputs", "outputs", "name", "trainable", "backend", "dtype")


def _model_arguments(args, kwargs):
    """Model's (inputs, outputs, name, trainable, backend, dtype) from Keras' ``*args, **kwargs``."""
    if len(args) > 3:
        raise TypeError(f"Model(): takes inputs, outputs and name positionally, got {len(args)} positional arguments")
    unknown = sorted(set(kwargs) - set(_MODEL_KEYWORDS))
    if unknown:
        raise TypeError(f"Model(): unexpected keyword argument(s) {unknown}; expected inputs, outputs, name, "
                        "trainable (Keras') or backend, dtype (mlp_gpu's)")
    given = dict(zip(("inputs", "outputs", "name"), args))
    twice = sorted(set(given) & set(kwargs))
    if twice:
        raise TypeError(f"Model(): got multiple values for {twice}")
    given.update(kwargs)
    name = given.get("name")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"Model(name): expected a string, got {type(name).__name__} {name!r}")
    trainable = check_bool(given.get("trainable", True), "Model(trainable)")
    return (given.get("inputs"), given.get("outputs"), name, trainable, given.get("backend"),
            given.get("dtype", "float32"))


class Model(Sequential):
    """``Model(inputs, outputs, name=None)``: the layers between symbolic inputs and outputs. A subclass
    instead defines its layers in ``__init__`` and wires them in ``call(inputs)``; the wiring is traced
    once, on symbolic inputs shaped like the first data (or ``build(input_shape)``).

    Keras' ``Model(*args, **kwargs)``: ``inputs`` and ``outputs`` (positional or by name), ``name`` (the
    third positional), ``trainable`` (True or False); and mlp_gpu's keyword arguments ``backend`` ("auto",
    "numpy", "cupy" or a backend object) and ``dtype`` ("float32", or "float64" on the NumPy backend).
    Any other argument is a TypeError naming it."""

    def __init__(self, *args, **kwargs):
        inputs, outputs, name, trainable, backend, dtype = _model_arguments(args, kwargs)
        subclass = type(self) is not Model and type(self).call is not Model.call
        if inputs is None and outputs is None and not subclass:
            raise TypeError("Model(): expected inputs and outputs (symbolic tensors from mlp_gpu.Input and layer "
                            "calls), or subclass Model and define call(inputs)")
        if (inputs is None) != (outputs is None):
            raise TypeError("Model: expected both inputs and outputs, got only "
                            f"{'inputs' if outputs is None else 'outputs'}")
        super().__init__(None, trainable, name=name or (snake_case(type(self).__name__) if subclass else "functional"),
                         backend=backend, dtype=dtype)
        self._graph = None
        if inputs is not None:
            self._init_graph(inputs, outputs)

    def call(self, inputs, training=None):
        """A subclass's forward wiring, run once on symbolic inputs."""
        raise NotImplementedError("Model.call: a subclassed model defines call(inputs)")

    # ---- the graph ----------------------------------------------------------------------------
    def _init_graph(self, inputs, outputs) -> None:
        graph = graph_mod.Graph(inputs, outputs)
        self._graph, self._input = graph, graph.inputs[0].node.layer
        self._inputs_listed = isinstance(inputs, (list, tuple, dict))  # how configs write input_layers
        self._outputs_listed = isinstance(outputs, (list, tuple, dict))
        self._output_list = isinstance(outputs, (list, tuple, dict)) and len(graph.outputs) > 1
        taken = {layer.name for layer in graph.layers if layer.name is not None}
        if len(taken) != sum(layer.name is not None for layer in graph.layers):
            names = [layer.name for layer in graph.layers if layer.name is not None]
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"layer names must be unique in a model, {twice} appear twice")
        for layer in graph.layers:  # Keras' names, counted per model: dense, dense_1, ...; input_layer
            if layer.name is None:
                base, k = "input_layer" if isinstance(layer, Input) else snake_case(type(layer).__name__), 0
                while (name := base if k == 0 else f"{base}_{k}") in taken:
                    k += 1
                layer.name = name
                taken.add(name)
        self.input_names = [t.node.layer.name for t in graph.inputs]
        self.output_names = [t.node.layer.name for t in graph.outputs]
        self._chain = graph.is_chain
        self.layers = ([n.layer for n in graph.nodes] if self._chain else graph.layers)
        if not self._chain:
            widths = [graph_mod.output_units(t) for t in graph.inputs]
            self._in_cuts = [sum(widths[:i]) for i in range(len(widths) + 1)]
            self._units = [graph_mod.output_units(t) for t in graph.outputs]
            self._losses = self._loss_weights = None

    def _trace(self, x) -> None:
        """A subclassed model's graph: ``call`` run once on Inputs shaped like x (an array, or a
        tuple/list/dict of arrays or shapes)."""
        if self._graph is not None:
            return

        def sym(value, name=None):
            shape = value if isinstance(value, tuple) and all(isinstance(d, (int, type(None))) for d in value) \
                else tuple(np.shape(value)[1:])
            shape = shape[1:] if shape and shape[0] is None else shape
            return Input(shape, name=name).output  # Keras hands call() tensors, not layers
        if isinstance(x, dict):
            inputs = {k: sym(v, k) for k, v in x.items()}
        elif isinstance(x, (list, tuple)) and x and not isinstance(x[0], (int, type(None))):
            inputs = type(x)(sym(v) for v in x)
        else:
            inputs = sym(x)
        wants_training = "training" in inspect.signature(self.call).parameters
        outputs = self.call(inputs, training=None) if wants_training else self.call(inputs)
        flat = list(inputs.values()) if isinstance(inputs, dict) else inputs
        self._init_graph(flat, outputs)
        pending, self._pending_compile = getattr(self, "_pending_compile", None), None
        if pending is not None:  # compile came before the graph was known
            self.loss = self.optimizer = None
            self.compile(**pending)

    def _require_graph(self, what):
        if self._graph is None:
            raise RuntimeError(f"{what}: the subclassed model {self.name!r} has not been traced yet; call "
                               "build(input_shape), or fit/evaluate/predict on data first")

    @property
    def _general(self) -> bool:
        return self._graph is not None and not self._chain

    def _input_shape(self, input_shape=None):
        if self._graph is None:
            return None
        if not self._general:
            return self._graph.inputs[0].sample_shape
        return (self._in_cuts[-1],) if len(self._graph.inputs) > 1 else self._graph.inputs[0].sample_shape

    def build(self, input_shape=None, seed=None) -> "Model":
        if self._graph is None:
            if input_shape is None:
                self._require_graph("build")
            self._trace(input_shape)
        if self.built or not self._general:
            return super().build(None if self._graph is not None else input_shape, seed)
        self.input_shape = self._input_shape()
        self.in_dim = self._in_cuts[-1]
        self.output_units = self._units[0] if len(self._units) == 1 else sum(self._units)
        return self._allocate(seed)

    def build_for_data(self, x) -> None:
        self._trace(x)
        super().build_for_data(x)

    @property
    def compute_layers(self):
        if not self._general:
            return super().compute_layers
        return [layer for layer in self._graph.layers if layer.computes]

    @property
    def dense_layers(self):
        return super().dense_layers if not self._general else [
            layer for layer in self.compute_layers if type(layer).__name__ == "Dense"]

    # ---- compile ------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True, *, seed=None):
        """As Sequential.compile; with several outputs ``loss``, ``loss_weights`` and ``metrics`` are one
        value for all, a list/tuple with one entry per output, or a dict by output name (Keras' rules)."""
        args = dict(optimizer=optimizer, loss=loss, loss_weights=loss_weights, metrics=metrics,
                    weighted_metrics=weighted_metrics, run_eagerly=run_eagerly,
                    steps_per_execution=steps_per_execution, jit_compile=jit_compile, auto_scale_loss=auto_scale_loss)
        if self._graph is None:  # a subclass not yet traced: keep the arguments until the first data
            compile_options.check(self, None, weighted_metrics, run_eagerly, steps_per_execution, jit_compile,
                                  auto_scale_loss)
            self._pending_compile = dict(args, seed=seed)
            self.loss = None if loss is None else losses_mod.get(loss if not isinstance(loss, (list, tuple, dict))
                                                                 else "mse")
            self.optimizer = optimizers.get(optimizer)
            return
        if not self._general:
            if isinstance(loss, (list, tuple)) and len(loss) == 1:
                loss = loss[0]
            if isinstance(metrics, dict):
                metrics = metrics.get(self.output_names[0])
            return super().compile(**dict(args, loss=loss, metrics=metrics), seed=seed)
        options = compile_options.check(self, loss_weights, weighted_metrics, run_eagerly, steps_per_execution,
                                        jit_compile, auto_scale_loss, single_output=False)
        if loss is None:
            raise ValueError("compile(loss=None): a model of several outputs or a graph of layers needs its loss "
                             "(one for all outputs, a list, or a dict by output name)")
        names, n = self.output_names, len(self.output_names)
        lossed = [losses_mod.get(v) for v in _per_output(loss, names, "loss")]
        weights = _per_output(1.0 if loss_weights is None else loss_weights, names, "loss_weights", 1.0)
        for name, w in zip(names, weights):
            if isinstance(w, bool) or not isinstance(w, (int, float, np.floating, np.integer)) or not np.isfinite(w) \
                    or w < 0:
                raise ValueError(f"loss_weights[{name!r}]: expected a finite number >= 0, got {w!r}")
        if metrics is None or n == 1:
            per_metrics = [metrics] + [None] * (n - 1)
        elif isinstance(metrics, dict) or (isinstance(metrics, (list, tuple)) and len(metrics) == n):
            per_metrics = _per_output(metrics, names, "metrics")
        else:
            raise ValueError(f"metrics: a model with {n} outputs {names} takes a list with one entry per output "
                             f"(a metric or a list of metrics), or a dict by output name; got {metrics!r}")
        compiled = [metrics_mod.get_list(m) for m in per_metrics]
        for t, loss_k, ms in zip(self._graph.outputs, lossed, compiled):
            loss_k.check_output(graph_mod.output_activation(t), graph_mod.output_units(t))
            for metric in ms:
                metric.check(loss_k, graph_mod.output_units(t))
        self._losses, self._loss_weights, self._metrics_per_output = lossed, [float(w) for w in weights], compiled
        self._layout_sums()
        self.loss = lossed[0] if n == 1 else _PackedTargets(lossed, names)
        self.compiled_metrics = compiled[0] if n == 1 else [m for ms in compiled for m in ms]
        self.metric_slots = metrics_mod.slots(self.compiled_metrics) if n == 1 else []
        configs = [[m.get_config() for m in ms] for ms in compiled]
        self.metrics = configs[0] if n == 1 else configs  # as saved: one list per output
        widths = [1 if loss_k.sparse else u for loss_k, u in zip(lossed, self._units)]
        self._y_cuts = [sum(widths[:i]) for i in range(n + 1)]
        fused = [loss_k.fused_activation == graph_mod.output_activation(t)
                 and self._graph.consumers[self._graph.tid[id(t)]] == 0
                 for t, loss_k in zip(self._graph.outputs, lossed)]
        self._fused, self._plan = fused, graph_mod.backward_plan(self._graph, fused)
        if seed is not None and self.built:
            self._redraw(seed)
        options.apply(self)
        self.optimizer = optimizers.get(optimizer)
        self._compile_seed = seed
        self._frozen_ids = trainable_mod.frozen_layers(self)
        if self.built:
            self._build_optimizer()
        else:
            self.build(seed=seed)
        if n > 1:  # the data sets check y as the outputs' targets side by side
            self.output_units = self._y_cuts[-1]

    def _layout_sums(self) -> None:
        """Where each output's running sums sit: [total loss, ..], [regularization], then per output."""
        self._sum_offsets, off = [], 2 * ACC_SIZE
        for ms in self._metrics_per_output:
            self._sum_offsets.append(off)
            off += metrics_mod.slots_end(ms)
        self._sums_size = off

    @property
    def sums_size(self) -> int:
        if not self._general or len(self._graph.outputs) == 1:
            return super().sums_size
        return self._sums_size

    @property
    def metrics_names(self) -> list[str]:
        if not self._general or len(self._graph.outputs) == 1:
            return super().metrics_names
        names = self.output_names
        return (["loss"] + [f"{o}_loss" for o in names]
                + [f"{o}_{m.name}" for o, ms in zip(names, self._metrics_per_output) for m in ms])

    def sum_logs(self, sums, rows) -> dict:
        if not self._general or len(self._graph.outputs) == 1:
            return super().sum_logs(sums, rows)
        logs = {"loss": float(sums[_LOSS] / rows)}
        for o, off in zip(self.output_names, self._sum_offsets):
            logs[f"{o}_loss"] = float(sums[off + _LOSS] / rows)
        for o, off, ms in zip(self.output_names, self._sum_offsets, self._metrics_per_output):
            for m, slot in zip(ms, metrics_mod.slots(ms)):
                logs[f"{o}_{m.name}"] = metrics_mod.result(m, sums, off + slot, rows)
        return logs

    # ---- the passes ---------------------------------------------------------------------------
    @property
    def loss_fused(self) -> bool:
        return super().loss_fused if not self._general else all(self._fused)

    def workspace(self, rows: int):
        if not self._general:
            return super().workspace(rows)
        g = self._graph
        losses = self._losses or [None] * len(g.outputs)
        specs = [((), np.int32) if (loss is None or loss.sparse) else ((u,), self.dtype)
                 for loss, u in zip(losses, self._units)]
        packed = self._y_cuts[-1] if len(g.outputs) > 1 and self._losses is not None else 0
        widths = [self._in_cuts[i + 1] - self._in_cuts[i] for i in range(len(g.inputs))]
        return graph_mod.GraphWorkspace(self.backend, rows, g, widths, specs, packed, self.dtype)

    def forward(self, x, ws, logits: bool = False, training: bool = False):
        if not self._general:
            return super().forward(x, ws, logits, training)
        fused = self._fused if self._losses is not None else [False] * len(self._graph.outputs)
        outs = graph_mod.forward(self, self._graph, ws, logits, training, fused)
        return outs if len(outs) > 1 else outs[0]

    def loss_and_count(self, ws, y, sums) -> None:
        if not self._general:
            return super().loss_and_count(ws, y, sums)
        be, g = self.backend, self._graph
        several = len(g.outputs) > 1
        for k, t in enumerate(g.outputs):
            tid, loss, ms = g.tid[id(t)], self._losses[k], self._metrics_per_output[k]
            z, dz = ws.value[tid], ws.grad[tid]
            if several:
                a, b = self._y_cuts[k], self._y_cuts[k + 1]
                target = ws.targets[k]
                target[...] = ws.y[:, a] if loss.sparse else ws.y[:, a:b]
                acc = sums[self._sum_offsets[k]:]
            else:
                target, acc = y, sums
            count = any(m.kind is None for m in ms)
            be.loss_grad(loss.kind(), z, target, dz, acc, count=count, threshold=loss.accuracy_threshold())
            if self._loss_weights[k] != 1.0:
                dz *= self._loss_weights[k]
            activation = graph_mod.output_activation(t) if self._fused[k] else "linear"
            for metric, slot in zip(ms, metrics_mod.slots(ms)):
                if metric.kind is not None:
                    metrics_mod.device_sum(be, metric, z, target, acc, slot, activation)
        reg = sums[ACC_SIZE:] if several else sums
        for w, _, r in self._regularized():
            be.regularize(w, None, r.l1, r.l2, reg, ws.rows)
        if several:  # the total: each output's summed loss times its weight, plus the penalties (no allocation)
            xp, total, term = be.xp, sums[_LOSS:_LOSS + 1], ws.loss_term
            xp.copyto(total, sums[ACC_SIZE + _LOSS:ACC_SIZE + _LOSS + 1])
            for off, w in zip(self._sum_offsets, self._loss_weights):
                xp.multiply(sums[off + _LOSS:off + _LOSS + 1], w, out=term)
                xp.add(total, term, out=total)

    def backward(self, x, ws) -> None:
        if not self._general:
            return super().backward(x, ws)
        graph_mod.backward(self, self._graph, ws, self._plan)
        for w, g, reg in self._regularized():
            self.backend.regularize(w, g, reg.l1, reg.l2, None, 0)

    # ---- loops: several inputs and outputs joined into one x and one y (models/packing.py) ---------
    def _packed(self, x, y=None, validation_data=None):
        self._trace(x)
        return (packing.pack_inputs(self, x), packing.pack_targets(self, y),
                packing.pack_validation(self, validation_data))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1, *,
            seed=None, on_nan="continue", distribute=None):
        """Sequential.fit; x a tuple, list or dict (by input name) of arrays for several inputs, y likewise
        for several outputs."""
        x, y, validation_data = self._packed(x, y, validation_data)
        return super().fit(x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                           shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_steps,
                           validation_batch_size, validation_freq, seed=seed, on_nan=on_nan, distribute=distribute)

    @property
    def output_widths(self) -> list[int]:
        """Columns of each output, as predict returns them."""
        return [self.output_units] if not self._general else list(self._units)

    def __call__(self, x, training=False):
        """``model(x)`` on arrays (a tuple, list or dict for several inputs): predict's outputs."""
        if symbolic(x) is not None or (isinstance(x, (list, tuple)) and any(symbolic(v) is not None for v in x)):
            raise NotImplementedError(f"model {self.name!r} called on symbolic tensors: nesting a model inside "
                                      "another is not supported; call its layers on the tensors instead")
        return super().__call__(x, training)

    def _call_training(self, x):
        x, _, _ = self._packed(x)
        return super()._call_training(x)

    def add(self, layer) -> None:
        raise TypeError("Model.add: a functional or subclassed model is wired by its layer calls; add() is "
                        "Sequential's")

    # ---- description and files (models/graph_config.py, models/keras_functional.py) ------------------
    def keras_config(self) -> dict:
        """A graph as Keras 3's Functional config (.keras files, TensorBoard's graph)."""
        return keras_functional.functional_config(self)

    def write_keras_weights(self, f) -> None:
        """A graph's weights in Keras 3's functional layout of model.weights.h5."""
        keras_functional.write_functional_weights(f, self)

    def get_config(self) -> dict:
        """A chain: Sequential's config. A graph: each layer's config with its calls in this model, and
        the input and output [layer, call] pairs."""
        return super().get_config() if not self._general else graph_config.model_config(self)

    @classmethod
    def from_config(cls, config: dict, backend=None) -> "Model":
        """The model of ``get_config()``: fresh layers from their configs, called as recorded."""
        return graph_config.model_from_config(cls, config, backend)

    def _summary_rows(self) -> list[tuple]:
        """Keras' summary of a graph, with its "Connected to" column; a chain prints as a Sequential."""
        return super()._summary_rows() if not self._general else graph_config.summary_rows(self)
