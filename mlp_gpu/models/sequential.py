"""Sequential: build the network, run its forward and backward passes, describe it."""
from __future__ import annotations

import hashlib
import weakref

import numpy as np

from .. import losses, metrics as metrics_mod, optimizers
from ..backend import get_backend
from .._checks import check_bool
from ..naming import snake_case
from ..backend.base import ACC
from ..training.eager import host_loss, host_metric, trace_or_eager
from ..layers.core import Dense, Input
from ..layers.base import Layer, layer_from_config, write_weights
from ..io.onnx import export_model
from ..training.fit import EVAL_BATCH, fit, predict
from ..utils import draw_seed
from .keras_api import KerasModelApi
from . import compile_options, pickling, sharing, trainable as trainable_mod
from .workspace import Workspace

LOSS_SLOT = ACC["loss_sum"]


class Sequential(KerasModelApi):
    """A stack of layers, Keras style: ``Sequential([Input((28, 28)), Flatten(), Dense(10, "softmax")])``.

    Keras' ``(layers, trainable, name)``, then mlp_gpu's keyword-only ``backend`` ("auto", "numpy",
    "cupy" or a backend object; default $MLP_GPU_BACKEND, else auto) and ``dtype`` ("float32"; "float64"
    for gradient checks on the NumPy backend). As in Keras, ``trainable=False`` freezes the model (nothing
    trains) and leaves the layers' own flags alone."""

    def __init__(self, layers=None, trainable=True, name: str | None = None, *, backend=None, dtype="float32"):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Sequential(name): expected a string, got {type(name).__name__} {name!r}")
        self.name = name or "sequential"
        # float64 exists for gradient checks on the NumPy backend; training runs in float32.
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
        self.layers: list[Layer] = []  # as in Keras, without the Input: model.layers[0] is the first real layer
        self._input: Input | None = None
        self._compile_seed = None       # compile's seed, kept for a build that waits for data
        self._drawn_digest = None       # digest of the initial weights, to tell them from trained ones
        self._backend_request = backend
        self.backend = None
        self.built = False
        self.loss = self.optimizer = None
        self.metrics: list = []              # compile's metrics as saved: names or {class_name, config}
        self.compiled_metrics: list = []     # the Metric objects, in compile's order
        self.metric_slots: list[int] = []    # each one's slot in the running sums (trainer.Sums)
        self.history = None
        self.run_eagerly = False             # compile(run_eagerly=True): plain steps, untraceable Python on the host
        self.jit_compile, self.auto_scale_loss = "auto", True  # Keras' compile arguments (compile_options.py)
        self._trainable = check_bool(trainable, "Sequential(trainable)")
        self._frozen_ids: set[int] = set()   # compile's snapshot of the frozen layers (models/trainable.py)
        self._inference_ids: set[int] = set()  # frozen BatchNormalization layers: inference mode in training
        self._freeze = None                  # the step's ops keeping the frozen weights (trainable.Freeze)
        self._bindings: dict = {}            # per layer id: this model's views (params, grads, state) of it
        self._ranges: dict = {}              # per layer id: its [start, end) in this model's flat parameters
        self.stop_training = False
        self.epochs_done = 0    # completed epochs, saved with the model for resuming
        self.fit_seed = None    # the seed of the last fit's shuffles
        for layer in layers or []:
            self.add(layer)

    # ---- structure ----------------------------------------------------------
    def add(self, layer: Layer, rebuild=True) -> None:
        """Keras' ``add``: the layer goes on top. A built model is built again with it, its other layers
        keeping their weights (keras_api.KerasModelApi.pop says why ``rebuild=False`` cannot wait)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"layer: expected a mlp_gpu layer (Input, Flatten, Dense, ...), got {type(layer).__name__}")
        check_bool(rebuild, "add(rebuild)")
        if self.built or self._rebuild_pending():
            return self._add_to_built(layer)
        if isinstance(layer, Input):
            if self.layers or self._input is not None:
                raise ValueError("model: an Input/InputLayer must come first, and only once")
            self._input = layer
            return
        names = {other.name for other in self.layers}
        if layer.name is None:  # Keras' names, counted per model: dense, dense_1, ...
            base, k = snake_case(type(layer).__name__), 0
            while (name := base if k == 0 else f"{base}_{k}") in names:
                k += 1
            layer.name = name
        elif layer.name in names:
            raise ValueError(f"layer names must be unique, {layer.name!r} appears twice")
        self.layers.append(layer)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """The layer called ``name`` (or at ``index`` of ``model.layers``), as Keras' get_layer."""
        if (name is None) == (index is None):
            raise ValueError("get_layer: give name or index, not both")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                    or not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer(index): expected an int in [0, {len(self.layers) - 1}], got {index!r}")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = [layer.name for layer in self.layers]
        raise ValueError(f"get_layer: no layer named {name!r}; the layers are {names}")
    @property
    def dense_layers(self) -> list[Dense]:
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    @property
    def compute_layers(self) -> list[Layer]:
        """The layers the passes run, in order (Input and Flatten only shape the data)."""
        return [layer for layer in self.layers if layer.computes]

    def _input_shape(self, input_shape=None):
        """The sample shape: declared (Input, or input_shape= on the first layer), else the one given."""
        if self._input is not None:
            return self._input.shape
        first = self.layers[0] if self.layers else None
        if first is not None and first.input_shape is not None:
            return first.input_shape
        if input_shape is not None and len(input_shape) > 1 and input_shape[0] is None:
            input_shape = input_shape[1:]  # Keras' build((None, 28, 28)) names the batch axis
        return input_shape

    @property
    def input_known(self) -> bool:
        """Whether the sample shape is declared, so the model can be built before it sees data."""
        return self._input_shape() is not None

    def build(self, input_shape=None, seed=None) -> "Sequential":
        """Fix shapes, draw initial weights and lay all parameters out in one flat buffer.

        ``input_shape`` is one sample's shape (or Keras' batch shape with None first); it is needed
        only when no Input/input_shape declared it. A compiled model gets its optimizer state here
        when compile had to wait for the shape (deferred build, as in Keras)."""
        if self.built:
            return self
        if not self.dense_layers:
            raise ValueError("model: needs at least one Dense layer")
        shape = self._input_shape(input_shape)
        if shape is None:
            raise ValueError("model: the input shape is unknown; start with Input(shape=...), give the first "
                             "layer an input_shape, or let fit/evaluate/predict build it from the data")
        self.input_shape = tuple(int(d) for d in shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
            layer.shape_out = shape
        last = self.compute_layers[-1]
        if not isinstance(last, Dense):
            raise ValueError(f"model: the last layer must be a Dense (the output), got {type(last).__name__}")
        self.output_units = last.units
        self.in_dim = int(np.prod(self.input_shape))
        return self._allocate(seed)

    def _allocate(self, seed) -> "Sequential":
        """Draw the computing layers' initial weights into one flat buffer and bind each layer's views."""
        self.backend = get_backend(self._backend_request)
        if self.dtype != np.float32 and self.backend.name != "numpy":
            raise ValueError(f"dtype={self.dtype.name!r} runs only on the numpy backend, not {self.backend.name!r}")
        rng = np.random.default_rng(draw_seed() if seed is None else seed)
        layers = self.compute_layers
        self.params = self._flat([v for layer in layers for v in layer.initial_values(rng)])
        self.grads = self.backend.zeros(self.params.size, self.dtype)
        self.state = self._flat([v for layer in layers for v in layer.initial_state()])
        # Dropout's Philox counter: on the device, advanced once per training forward pass.
        self.rng_counter = self.backend.zeros(1, np.int64)
        p_off = s_off = 0
        self.param_segments = [0]  # where each trainable tensor starts and ends in the flat buffers
        for layer in layers:
            p, g, st = [], [], []
            start = p_off
            for shape_ in layer.param_shapes():
                size = int(np.prod(shape_))
                p.append(self.params[p_off:p_off + size].reshape(shape_))
                g.append(self.grads[p_off:p_off + size].reshape(shape_))
                p_off += size
                self.param_segments.append(p_off)
            for shape_ in layer.state_shapes():
                size = int(np.prod(shape_))
                st.append(self.state[s_off:s_off + size].reshape(shape_))
                s_off += size
            held = sharing.held_elsewhere(layer, self)  # a layer another model built: its weights, not new ones
            if getattr(layer, "uses_rng", False):
                layer.attach_rng(rng, self.rng_counter)
            self._bindings[id(layer)], self._ranges[id(layer)] = (p, g, st), (start, p_off)
            if held is not None:
                sharing.copy_in(self.backend, layer, held, p + st, self.name)
            sharing.bind(self, layer)
        for layer in self.layers:
            layer._owner = weakref.ref(self)
        self.built = True
        self._drawn_digest = self._weights_digest()
        if self.optimizer is not None:  # compile waited for the shape (its optimizer may hold another model's state)
            self._build_optimizer()
        return self

    def _build_optimizer(self) -> None:
        """Fresh optimizer state for the flat buffer, and the step's hold on the frozen layers."""
        self.optimizer.build(self.backend, self.params.size, dtype=self.dtype, segments=self.param_segments)
        self._inference_ids = trainable_mod.inference_layers(self, now=False)
        self._freeze = trainable_mod.make_freeze(self)

    def _claim_layers(self) -> None:
        """Take back layers shared with another model that used them since (models/sharing.py)."""
        if self.built:
            sharing.claim(self)

    def _weights_digest(self) -> str:
        return hashlib.sha256(self.backend.to_host(self.params).tobytes()).hexdigest()

    def build_for_data(self, x) -> None:
        """Keras' deferred build: a model without a declared input shape takes it from the first data."""
        if not self.built:
            shape = np.shape(x)[1:]
            if not shape:
                raise ValueError(f"x: expected an array of samples (rows, ...), got shape {np.shape(x)}")
            self.build(input_shape=shape, seed=self._compile_seed)

    def _flat(self, host_arrays):
        """One device buffer holding the arrays back to back, in the model's dtype."""
        if not host_arrays:
            return self.backend.zeros(0, self.dtype)
        return self.backend.asarray(np.concatenate([np.asarray(v, self.dtype).ravel() for v in host_arrays]))

    def count_params(self) -> int:
        """Trainable and non-trainable parameters, as Keras counts them."""
        self._require_built("count_params")
        return sum(int(w.size) for w in self._weight_views())

    def _require_built(self, what):
        self._claim_layers()
        if not self.built and self.input_known:  # as in Keras, a declared input shape is enough to build
            self.build(seed=self._compile_seed)
        if not self.built:
            raise RuntimeError(f"{what}: the model is not built yet: its input shape is unknown; start with "
                               "Input(shape=...), call build(input_shape), or fit/evaluate/predict on data first")

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"{what}: the model is not compiled; call compile(optimizer=..., loss=...) first")
        if self.loss is None:  # Keras' words for a model compiled without a loss
            raise ValueError(f"{what}: No loss to compute. Provide a `loss` argument in `compile()`.")
        self._claim_layers()

    # ---- training setup -----------------------------------------------------
    @property
    def compiled(self) -> bool:
        """Whether compile was called (Keras' ``model.compiled``); its loss may be None."""
        return self.optimizer is not None

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True, *, seed=None):
        """Keras' ``compile``: the optimizer, the loss and the metrics (each a name, class, object or Keras
        function); returns None. ``loss=None`` is allowed, as in Keras, but fit and evaluate then raise.

        A Python loss, metric (or Lambda, activation) is traced here into one kernel; one that cannot be
        traced is refused naming its line and op, unless ``run_eagerly=True``: then a loss or metric runs
        as Python on the host every step (slow; see training/eager.py). What Keras' other arguments mean
        here: models/compile_options.py. ``seed`` (mlp_gpu's, keyword only) draws the initial weights.
        The layers' ``trainable`` flags as they are now decide what fit trains (models/trainable.py)."""
        options = compile_options.check(self, loss_weights, weighted_metrics, run_eagerly, steps_per_execution,
                                        jit_compile, auto_scale_loss)
        loss = None if loss is None else losses.get(loss)
        optimizer = optimizers.get(optimizer)
        compiled = metrics_mod.get_list(metrics)
        if not self.dense_layers:
            raise ValueError("model: needs at least one Dense layer")
        last = self.dense_layers[-1]
        if loss is not None:
            loss.check_output(last.activation, last.units)
            for metric in compiled:
                metric.check(loss, last.units)
            output_activation = last.activation if loss.fused_activation == last.activation else "linear"
            for obj in ([loss] if loss.traced else []) + [m for m in compiled if m.kind == "traced"]:
                trace_or_eager(obj, last.units, output_activation, options.run_eagerly)
            if loss.traced:
                counted = [m.name for m in compiled if m.kind is None]
                if counted:
                    raise ValueError(f"metrics: {counted} read the built-in losses' correct count, which the "
                                     f"custom loss {loss.name!r} does not make; use a metric function or class "
                                     "instead")
        options.apply(self)
        if seed is not None and self.built:
            self._redraw(seed)
        self.loss, self.optimizer = loss, optimizer
        self.compiled_metrics, self.metric_slots = compiled, metrics_mod.slots(compiled)
        self.metrics = [metrics_mod.serialize(metric) for metric in compiled]
        self._compile_seed = seed
        self._frozen_ids = trainable_mod.frozen_layers(self)
        if self.built:
            self._build_optimizer()
        elif self.input_known:
            self.build(seed=seed)  # builds the optimizer too

    def _redraw(self, seed) -> None:
        """compile(seed=...) on a built model: draw its initial weights again from that seed, unless
        they were trained or set since they were drawn (a seed is never ignored silently)."""
        self._claim_layers()
        if self._weights_digest() != self._drawn_digest:
            raise ValueError(f"compile(seed={seed}): the model already holds trained or set weights; a seed only "
                             "chooses initial weights. Compile without seed to keep them, or build a new model.")
        shared = sharing.shared_layers(self)
        if shared:
            raise ValueError(f"compile(seed={seed}): layers {shared} are shared with another model, whose weights "
                             "a redraw would replace; compile without seed to keep them")
        self.built = False
        self.build(seed=seed)

    @property
    def loss_fused(self) -> bool:
        return self.loss is not None and self.loss.fused_activation == self.compute_layers[-1].activation

    def workspace(self, rows: int) -> Workspace:
        sparse = self.loss is None or self.loss.sparse
        target_shape = () if sparse else (self.output_units,)
        return Workspace(self.backend, rows, self.in_dim, self.compute_layers,
                         target_shape, np.int32 if sparse else self.dtype, self.dtype)

    # ---- the passes -----------------------------------------------------------
    def forward(self, x, ws: Workspace, logits: bool = False, training: bool = False):
        """Run the layers on x (rows, in_dim) into ws; return the output buffer.

        With ``logits`` the output activation is left out when the loss applies it. With
        ``training``, Dropout drops and BatchNormalization uses (and moves) batch statistics.
        """
        be = self.backend
        layers = self.compute_layers
        a = x
        for i, layer in enumerate(layers):
            if training and id(layer) in self._inference_ids:  # a frozen BatchNormalization (trainable.py)
                trainable_mod.frozen_bn_forward(be, layer, a, ws.a[i], ws.aux[i])
            elif i == len(layers) - 1 and logits and self.loss_fused:
                layer.forward(be, a, ws.a[i], training, ws.aux[i], activation="linear")
            else:
                layer.forward(be, a, ws.a[i], training, ws.aux[i])
            a = ws.a[i]
        if training and any(getattr(layer, "uses_rng", False) for layer in layers):
            be.advance(self.rng_counter, 1)  # the next pass draws fresh dropout masks
        return a

    @property
    def sums_size(self) -> int:
        """Slots of the running sums (training/steps.Sums): the fixed ones, then each metric's."""
        return metrics_mod.slots_end(self.compiled_metrics)

    def sum_logs(self, sums, rows: int) -> dict:
        """Mean loss and each metric from the host copy of the running sums over ``rows`` rows."""
        logs = {"loss": float(sums[ACC["loss_sum"]] / rows)}
        for metric, slot in zip(self.compiled_metrics, self.metric_slots):
            logs[metric.name] = metrics_mod.result(metric, sums, slot, rows)
        return logs

    @property
    def metrics_names(self) -> list[str]:
        """The keys evaluate's list and each epoch's logs use, as Keras names them: loss first."""
        return ["loss"] + [metric.name for metric in self.compiled_metrics]

    def loss_and_count(self, ws: Workspace, y, sums) -> None:
        """ws.dz[-1] <- dL/d(output); the running sums get the summed row losses, the correct rows and
        each metric's rows (see trainer.Sums). Needs forward(logits=True)."""
        be, last = self.backend, self.dense_layers[-1]
        count = any(metric.kind is None for metric in self.compiled_metrics)
        if self.loss.traced and self.loss.eager_reason:  # compile(run_eagerly=True): Python on the host
            host_loss(be, self.loss, ws.a[-1], y, ws.dz[-1], sums, LOSS_SLOT)
        elif self.loss.traced:  # a user's loss: one generated kernel (forward, row means, gradient)
            acc_scale, grad_scale = self.loss.scales(ws.rows)
            be.run_traced(self.loss.program(last.units), {"t": y, "z": ws.a[-1], "dz": ws.dz[-1]}, sums,
                          LOSS_SLOT, acc_scale, {"grad_scale": grad_scale})
        else:
            be.loss_grad(self.loss.kind(), ws.a[-1], y, ws.dz[-1], sums, count=count,
                         threshold=self.loss.accuracy_threshold())
        output_activation = last.activation if self.loss_fused else "linear"  # ws.a[-1] holds logits when fused
        for metric, slot in zip(self.compiled_metrics, self.metric_slots):
            if metric.kind == "traced" and metric.eager_reason:
                host_metric(be, metric.host_fn(output_activation), ws.a[-1], y, sums, slot)
            elif metric.kind == "traced":
                be.run_traced(metric.program(last.units, output_activation), {"t": y, "z": ws.a[-1]}, sums, slot)
            elif metric.kind is not None:
                metrics_mod.device_sum(be, metric, ws.a[-1], y, sums, slot, output_activation)
        for w, _, reg in self._regularized():  # penalties join the summed loss once per row, as in Keras
            be.regularize(w, None, reg.l1, reg.l2, sums, ws.rows)

    def _regularized(self):
        """The weight penalties in the loss: as Keras, those of trainable layers only (compile's snapshot)."""
        return [r for layer in self.compute_layers if id(layer) not in self._frozen_ids for r in layer.regularized()]

    def backward(self, x, ws: Workspace) -> None:
        """Fill the flat gradient buffer from ws.dz[-1] (as left by ``loss_and_count``)."""
        be = self.backend
        layers = self.compute_layers
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            args = (be, ws.a[i - 1] if i else x, ws.a[i], ws.dz[i], ws.dz[i - 1] if i else None, ws.aux[i])
            if id(layer) in self._inference_ids:
                trainable_mod.frozen_bn_backward(be, layer, args[3], args[4], args[5])
            elif i == len(layers) - 1 and self.loss_fused:
                layer.backward(*args, activation="linear")
            else:
                layer.backward(*args)
        for w, g, reg in self._regularized():
            be.regularize(w, g, reg.l1, reg.l2, None, 0)

    # ---- weights ----------------------------------------------------------------
    def _weight_views(self) -> list:
        return [w for layer in self.compute_layers for w in layer.weight_views]

    def get_weights(self) -> list[np.ndarray]:
        """Host copies of every layer's weights, in layer order, each layer's in Keras' order
        (Dense: kernel, bias; BatchNormalization: gamma, beta, moving_mean, moving_variance)."""
        self._require_built("get_weights")
        return [w for layer in self.layers for w in layer.get_weights()]

    # Keras' variable lists, layer by layer, each layer's trainable weights first (layers.Variable).
    @property
    def weights(self) -> list:
        return self._variables("weights")

    @property
    def trainable_weights(self) -> list:
        return self._variables("trainable_weights")

    @property
    def non_trainable_weights(self) -> list:
        return self._variables("non_trainable_weights")

    variables, trainable_variables, non_trainable_variables = weights, trainable_weights, non_trainable_weights

    def _variables(self, kind) -> list:
        """Keras' lists: a frozen layer's weights are all non-trainable (its Variables say trainable=False)."""
        if not self.built and self.input_known:  # as in Keras, a declared input shape has built the model
            self.build(seed=self._compile_seed)
        self._claim_layers()
        weights = []
        for layer in self.layers:
            for v in layer.weights:
                v.trainable = v.trainable and trainable_mod.is_trainable(layer)
                weights.append(v)
        if kind == "weights":
            return weights
        if not self._trainable:  # Keras: a frozen model has no trainable weights, whatever its layers say
            return [] if kind == "trainable_weights" else weights
        return [v for v in weights if v.trainable == (kind == "trainable_weights")]

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        """Keras: setting a model's flag sets every layer's (takes effect at the next compile)."""
        self._trainable = check_bool(value, "trainable")
        for layer in self.layers:
            layer.trainable = self._trainable

    def weights_finite(self) -> bool:
        """Whether every weight (and stored statistic) is finite: one reduction on the device."""
        self._require_built("weights_finite")
        xp = self.backend.xp
        buffers = [b for b in (self.params, getattr(self, "state", None)) if b is not None and b.size]
        return all(bool(xp.isfinite(b).all()) for b in buffers)

    def set_weights(self, weights) -> None:
        self._require_built("set_weights")
        write_weights(self.backend, [w for layer in self.layers for w in layer.weight_views], weights)

    # ---- description ------------------------------------------------------------
    def get_config(self) -> dict:
        layers = ([self._input] if self._input is not None else []) + self.layers
        return {"name": self.name,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in layers]}

    @classmethod
    def from_config(cls, config: dict, backend=None) -> "Sequential":
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("model config: expected a dict with a 'layers' list")
        layers = []
        for entry in config["layers"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
                raise ValueError(f"model config: bad layer entry {entry!r}")
            layers.append(layer_from_config(entry.get("class_name"), entry["config"]))
        return cls(layers, name=config.get("name"), backend=backend)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None) -> None:
        """Print each layer's output shape and parameter count, and the float32 size. Keras' arguments;
        only ``print_fn`` changes what is printed (no nested models to expand; columns fit their text)."""
        print_fn = print if print_fn is None else print_fn
        self.build()
        rows = self._summary_rows()
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
        rule = "=" * sum(widths)
        lines = [f'Model: "{self.name}"', rule]
        for k, r in enumerate(rows):
            lines.append("".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            lines.append(rule if k == 0 else "-" * sum(widths))
        total, (trainable, _) = self.count_params(), trainable_mod.split_counts(self)
        lines[-1] = rule
        lines += [f"Total params: {total:,} ({_size(total * 4)}; {total * 4:,} bytes as float32)",
                  f"Trainable params: {trainable:,} ({_size(trainable * 4)})",
                  f"Non-trainable params: {total - trainable:,} ({_size((total - trainable) * 4)})",
                  f"Backend: {self.backend.name}"]
        for line in lines:
            print_fn(line)

    def _summary_rows(self) -> list[tuple]:
        """The summary's table: a header, then one row per layer."""
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            if isinstance(layer, Input):  # as in Keras, the input is not a row of its own
                continue
            n = sum(int(w.size) for w in layer.weight_views) if layer.computes else 0
            rows.append((f"{layer.name} ({type(layer).__name__})", str((None,) + tuple(layer.shape_out)), f"{n:,}"))
        return rows

    # ---- loops and files (trainer.py, io/) -----------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1, *,
            seed=None, on_nan="continue", distribute=None):
        """Train on (x, y) as Keras' ``fit`` (same arguments and order; ``batch_size=None`` is 32); return the
        History. ``seed`` fixes the shuffles; ``on_nan="raise"`` stops a diverging run with TrainingDiverged
        (by default it goes on, as in Keras, and the History records nan). ``distribute``: data-parallel
        training over several processes (see ``mlp_gpu.distributed``; default: as the program was started).
        Keras' per-sample and per-class weights, step limits and validation frequency are refused by name."""
        unsupported = dict(class_weight=class_weight, sample_weight=sample_weight, steps_per_epoch=steps_per_epoch,
                           validation_steps=validation_steps, validation_batch_size=validation_batch_size)
        for arg, value in unsupported.items():
            if value is not None:
                raise TypeError(f"fit({arg}): not supported by mlp_gpu (every sample and epoch counts "
                                          f"once, validation in batches of {EVAL_BATCH} rows); leave it None")
        if validation_freq != 1:
            raise TypeError(f"fit(validation_freq): only 1 (validate after every epoch), got "
                                      f"{validation_freq!r}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"fit(shuffle): expected True or False, got {type(shuffle).__name__} {shuffle!r}")
        return fit(self, x, y, 32 if batch_size is None else batch_size, epochs, verbose, callbacks,
                   validation_split, validation_data, shuffle, initial_epoch, seed, on_nan, distribute)

    def __call__(self, x, training=False):
        """Keras' ``model(x)``: the outputs for the inputs ``x`` (a NumPy array here, a tensor in Keras).
        ``training=True`` runs the layers as in training, on all of x as one batch, as Keras' call does:
        Dropout drops (a fresh mask each call: MC dropout), BatchNormalization normalizes by the batch's
        statistics and moves its moving ones (as Keras' ``training and self.trainable``). No weight changes."""
        training = check_bool(False if training is None else training, "training")
        return self._call_training(x) if training else self.predict(x, verbose=0)

    def _call_training(self, x):
        """x (one array) as one batch through the layers in training mode."""
        self.build_for_data(x)
        compiled, self._inference_ids = self._inference_ids, trainable_mod.inference_layers(self, now=True)
        try:  # a frozen BatchNormalization as its flag is now, as Keras' call reads it
            return predict(self, x, max(1, len(x)), 0, training=True)
        finally:
            self._inference_ids = compiled

    def __reduce__(self):
        """pickle / copy.deepcopy: the model as the bytes of its model file (models/pickling.py)."""
        return type(self)._unpickle, (pickling.state(self),)

    @classmethod
    def _unpickle(cls, saved):
        return pickling.restore(cls, saved, Sequential)

    def export(self, filepath, format="onnx", verbose=None, input_signature=None, **kwargs) -> None:
        """Keras' ``export``; only ``format="onnx"`` (see mlp_gpu/io/onnx.py). kwargs: ``opset_version``,
        ``input_dtype`` ("float32", or "uint8" to take raw pixels scaled by 1/255 in the graph)."""

        export_model(self, filepath, format, verbose, input_signature, **kwargs)


def _size(nbytes: int) -> str:
    """Bytes as Keras' summary writes them: 1.02 MB, 4.69 KB, 0.00 B."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes:.2f} B"
