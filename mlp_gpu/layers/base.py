"""Layers and the protocol every layer follows; a layer holds views into the model's flat buffers."""
from __future__ import annotations

import numpy as np

from .. import activations
from .._checks import check_bool, check_int
from .node import Node, symbolic
from .variables import (FLOAT32, AddedVariable, Variable, added_weight, check_dtype, check_weights,  # noqa: F401
                        write_weights)


def check_activation(activation) -> str:
    """The table name of an activation given as Keras takes it (a name, an entry of the table, or None)."""
    return activations.get(activation).name


def _check_shape(shape, arg):
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{arg}: expected a tuple of positive ints, got {shape!r}")
    dims = tuple(shape)  # no int() on each: it would read "28" or truncate 28.5 without a word
    if not dims or any(isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d <= 0
                       for d in dims):
        raise ValueError(f"{arg}: expected a tuple of positive ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def _first_layer_shape(owner, input_shape, input_dim):
    """Keras' ``input_shape=``/``input_dim=`` on a first layer: the shape of one sample, or None."""
    if input_shape is not None and input_dim is not None:
        raise ValueError(f"{owner}: give input_shape or input_dim, not both")
    if input_dim is not None:
        return (check_int(input_dim, f"{owner}(input_dim)", 1),)
    return None if input_shape is None else _check_shape(input_shape, f"{owner}(input_shape)")


LAYER_CLASSES: dict[str, type] = {}  # every Layer subclass by name, for configs read from files


class Layer:
    """A step of the network, run by the model through one protocol:

    - ``output_shape(input_shape)`` fixes shapes at build time (one sample's shape in and out);
    - ``param_shapes()`` / ``state_shapes()`` list its trainable and non-trainable weights,
      ``weight_names()`` names both in Keras' order (trainable first);
    - ``bind(backend, params, grads, state)`` points it at its views of the model's flat parameter,
      gradient and state buffers (the optimizer touches only the first);
    - ``buffers()`` asks the workspace for per-batch scratch (``{name: (shape, per_row)}``);
    - ``forward(backend, x, out, training, aux)`` and ``backward(backend, x, y, dy, dx, aux)``
      run it on (rows, features) batches; backward may overwrite dy and fills its gradients;
    - ``apply_constraints(backend)`` projects its weights after each optimizer update.

    Keras' constructor keywords (``trainable``, ``dtype``, ``name``, ...) reach every layer through
    ``**kwargs``. A layer of one's own may declare its weights Keras' way, ``self.add_weight(...)`` in
    ``build(input_shape)``: the model lays them out, draws them and binds their views (``variable.value``
    in ``forward``). Shape-only layers (Input, Flatten) set ``computes = False``: every batch is already
    flat. As in Keras, the first layer may declare the sample shape: ``Flatten(input_shape=[28, 28])``,
    ``Dense(4, input_dim=8)``. ``get_weights``/``set_weights`` read and write the layer's share of
    the model's flat buffers once the model is built.
    """

    computes = True
    config_keys = frozenset({"name", "input_shape"})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("mlp_gpu.") and not cls.__dict__.get("_abstract"):  # files name our own classes
            LAYER_CLASSES[cls.__name__] = cls

    def __init__(self, *, activity_regularizer=None, trainable=True, dtype=None, autocast=True, name=None,
                 **kwargs):
        what = type(self).__name__
        if name is not None and (not isinstance(name, str) or "/" in name or not name):
            raise ValueError(f"{what}(name): expected a non-empty string without '/' (Keras' rule), got {name!r}")
        if activity_regularizer is not None:  # Keras adds it to the loss; our steps have no place for it yet
            raise ValueError(f"{what}(activity_regularizer): not supported (only None), got {activity_regularizer!r}; "
                             "regularize the weights with kernel_regularizer/bias_regularizer instead")
        self.activity_regularizer = None
        input_shape, input_dim = kwargs.pop("input_shape", None), kwargs.pop("input_dim", None)
        if kwargs:  # Keras' error for any other keyword
            raise ValueError(f"Unrecognized keyword arguments passed to {what}: {kwargs}")
        self.name = name
        self.trainable = check_bool(trainable, f"{what}(trainable)")  # False: its weights stay as they are
        self._dtype = check_dtype(dtype, f"{what}(dtype)")
        self.autocast = check_bool(autocast, f"{what}(autocast)")
        self.input_shape = _first_layer_shape(what, input_shape, input_dim)
        self.backend = None  # the model's, once built
        self.params, self.grads, self.state = [], [], []
        self._added = []  # weights declared by add_weight (AddedWeight), in the order added
        self._built = self._building = False
        self._inbound_nodes = []  # one Node per call on symbolic tensors (a functional model's edges)

    merges = False  # a merge layer takes a list of tensors (layers/merging.py)

    # ---- Keras' attributes ------------------------------------------------------------
    @property
    def dtype(self) -> str:
        """The dtype of the layer's weights and computations: always 'float32'."""
        return self._dtype

    variable_dtype = compute_dtype = dtype

    @property
    def built(self) -> bool:
        """Keras' ``built``: the weights' shapes are fixed (by ``build``, a call on a tensor or the model)."""
        return self._built or self.backend is not None

    @built.setter
    def built(self, value) -> None:
        self._built = check_bool(value, f"{type(self).__name__}.built")

    def _what(self) -> str:
        return f"{type(self).__name__} layer {self.name!r}" if self.name else f"{type(self).__name__} layer"

    def __call__(self, inputs, training=None, **kwargs):
        """Keras' ``layer(x)`` on symbolic tensors (``Input(...)`` or another layer's output): records the
        call as a node of a graph and returns its symbolic output. Calling it again shares its weights."""
        what = self._what()
        if kwargs:
            raise TypeError(f"{what}: unexpected call arguments {sorted(kwargs)}; only `training` is taken")
        if training not in (None, True, False):
            raise ValueError(f"{what}(training): expected None, True or False, got {training!r}")
        if self.merges:
            if not isinstance(inputs, (list, tuple)) or not inputs:
                raise ValueError(f"{what}: a merge layer should be called on a list of at least 1 input, got "
                                 f"{type(inputs).__name__}")
            tensors = [symbolic(t) for t in inputs]
        else:
            if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
                inputs = inputs[0]
            tensors = [symbolic(inputs)]
        if any(t is None for t in tensors):
            raise TypeError(f"{what}: expected symbolic tensors (mlp_gpu.Input(shape) or a layer's output), got "
                            f"{type(inputs).__name__}; mlp_gpu runs layers inside a model: build "
                            "mlp_gpu.Model(inputs, outputs) or a Sequential and call predict(x)")
        shapes = [t.sample_shape for t in tensors]
        if self._inbound_nodes:
            first = [t.sample_shape for t in self._inbound_nodes[0].inputs]
            if shapes != first:
                raise ValueError(f"{what} is called again (sharing its weights) on inputs of shapes {shapes}, "
                                 f"but its first call took {first}; shared weights need the same shapes")
        self.shape_out = self.output_shape(shapes if self.merges else shapes[0])
        self._built = True
        return Node(self, tensors, self.shape_out, training, self.merges).output

    # ---- Keras' build, shapes and weights ---------------------------------------------
    def build(self, input_shape) -> None:
        """Keras' build from the batch shape (``(None, 784)``; a list of them for a merge layer): fixes the
        weights' shapes. Their values exist once a model lays the layer out (build, compile or fit)."""
        if not self._building:  # a subclass's build calling super().build() from inside output_shape
            self.output_shape(_sample_shapes(self, input_shape))
        self._built = True

    def compute_output_shape(self, *args, **kwargs):
        """Keras' output batch shape for an input batch shape (``(None, 784)`` -> ``(None, 300)``)."""
        input_shape = _one_shape_argument(self, args, kwargs)
        samples = _sample_shapes(self, input_shape)
        batch = tuple(input_shape[0] if self.merges else input_shape)[0]
        if type(self).output_shape is Layer.output_shape:  # a layer of one's own without a shape rule: the input's
            return input_shape[0] if self.merges else tuple(input_shape)
        return (batch, *self.output_shape(samples))

    def output_shape(self, input_shape):
        """One sample's output shape; a layer of one's own is built here (its ``build`` adds its weights)."""
        if type(self).build is not Layer.build and not self._built:
            self._added, self._building = [], True
            try:
                self.build((None, *input_shape) if not self.merges else [(None, *s) for s in input_shape])
            finally:
                self._building = False
            self._built = True
        if type(self).compute_output_shape is not Layer.compute_output_shape:
            batch = (None, *input_shape) if not self.merges else [(None, *s) for s in input_shape]
            return tuple(self.compute_output_shape(batch))[1:]
        return input_shape if not self.merges else input_shape[0]

    def add_weight(self, *args, shape=None, initializer=None, dtype=None, trainable=True, autocast=True,
                   regularizer=None, constraint=None, aggregation="none", overwrite_with_gradient=False, name=None):
        """Keras' add_weight, called from ``build``: declares a weight the model lays out in its flat buffers
        and draws with ``initializer`` (Keras' default glorot_uniform); returns its Variable, whose ``value``
        is the device view once the model is built. ``regularizer`` joins the loss, ``constraint`` runs after
        each update (trainable weights); dtype float32 only."""
        if self.backend is not None:
            raise RuntimeError(f"{self._what()}: add_weight after the model laid the weights out; add weights in "
                               "build(input_shape)")
        spec = added_weight(self, args, shape, initializer, dtype, trainable, autocast, regularizer, constraint,
                            aggregation, overwrite_with_gradient, name)
        self._added.append(spec)
        return AddedVariable(self, spec)

    def count_params(self) -> int:
        """The layer's weights' sizes summed, trainable and not (Keras' count)."""
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer {self.name!r}, but the layer isn't built. "
                             "You can build it manually via: `layer.build(input_shape)`.")
        return sum(int(np.prod(s)) for s in self.param_shapes() + self.state_shapes())

    def param_shapes(self) -> list[tuple[int, ...]]:
        return [w.shape for w in self._added if w.trainable]

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [w.shape for w in self._added if not w.trainable]

    def weight_names(self) -> list[str]:
        return [w.name for w in self._added if w.trainable] + [w.name for w in self._added if not w.trainable]

    def initial_values(self, rng) -> list[np.ndarray]:
        # the non-trainable ones are drawn here too, from the model's generator, for initial_state
        values = {id(w): np.asarray(w.initializer(w.shape, rng)).reshape(w.shape) for w in self._added}
        self._initial_state = [values[id(w)] for w in self._added if not w.trainable]
        return [values[id(w)] for w in self._added if w.trainable]

    def initial_state(self) -> list[np.ndarray]:
        return getattr(self, "_initial_state", [])

    def bind(self, backend, params: list, grads: list, state: list) -> None:
        """Point the layer at its views of the model's flat buffers."""
        if callable(getattr(self, "call", None)) and type(self).forward is Layer.forward:
            raise TypeError(f"{self._what()} defines Keras' call(), which mlp_gpu does not trace; a layer runs "
                            "through forward(backend, x, out, training, aux) and backward(backend, x, y, dy, dx, aux) "
                            "on the backend (see mlp_gpu.layers.Layer), or use Lambda(fn) for math without weights")
        self.backend = backend
        self.params, self.grads, self.state = params, grads, state

    @property
    def weight_views(self) -> list:
        """Device views of the weights named by ``weight_names()``, Keras' order (trainable first);
        empty before the model is built."""
        return (self.params + self.state)[:len(self.weight_names())]

    # Keras' variable lists: Variable objects over the views (numpy(), assign(), shape, path ...).
    # A layer with trainable=False shows every weight as non-trainable, as in Keras.
    @property
    def weights(self) -> list:
        return [Variable(self, i, trainable=self.trainable and i < len(self.params))
                for i in range(len(self.weight_views))]

    @property
    def trainable_weights(self) -> list:
        return [v for v in self.weights if v.trainable]

    @property
    def non_trainable_weights(self) -> list:
        return [v for v in self.weights if not v.trainable]

    variables, trainable_variables, non_trainable_variables = weights, trainable_weights, non_trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        """Host copies of the weights, as Keras returns them."""
        return [self.backend.to_host(w) for w in self.weight_views]

    def set_weights(self, weights) -> None:
        """Write host arrays into the layer's weights (shapes and finiteness checked first)."""
        if self.backend is None:
            raise RuntimeError(f"layer {self.name!r}: set_weights needs a built model; build or compile it first")
        write_weights(self.backend, self.weight_views, weights)

    def buffers(self) -> dict:
        return {}

    def regularized(self) -> list:
        """(weight view, gradient view, Regularizer) for each regularized weight."""
        trainable = [w for w in self._added if w.trainable]
        return [(p, g, w.regularizer) for p, g, w in zip(self.params, self.grads, trainable) if w.regularizer]

    def constrained(self) -> list:
        """(weight view, Constraint) for each constrained trainable weight."""
        trainable = [w for w in self._added if w.trainable]
        return [(p, w.constraint) for p, w in zip(self.params, trainable) if w.constraint is not None]

    def apply_constraints(self, backend) -> None:
        """Keras' step after the optimizer update: each constrained weight <- constraint(weight), in place.
        A layer with trainable=False is left alone (the optimizer does not see its weights)."""
        if not self.trainable:
            return
        for view, constraint in self.constrained():
            if constraint.on_host:  # a user's Keras-style __call__(w): a host copy in, an array out
                value = np.asarray(constraint(backend.to_host(view)), dtype=view.dtype)
                write_weights(backend, [view], [value], what=f"{self._what()} constraint {type(constraint).__name__}")
            else:
                view[...] = constraint.project(backend.xp, view)

    def forward(self, backend, x, out, training=False, aux=None) -> None:
        raise NotImplementedError(f"{self._what()}: a layer defines forward(backend, x, out, training, aux)")

    def backward(self, backend, x, y, dy, dx, aux=None) -> None:
        raise NotImplementedError(f"{self._what()}: a layer defines backward(backend, x, y, dy, dx, aux)")

    @classmethod
    def from_config(cls, config: dict):
        """Keras' from_config: the layer its get_config describes."""
        return cls(**config)

    def get_config(self) -> dict:
        cfg = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        return cfg


def _one_shape_argument(layer, args, kwargs):
    """compute_output_shape's one input shape, given as Keras' callers do (positionally or input_shape=)."""
    if len(args) + len(kwargs) != 1 or (kwargs and "input_shape" not in kwargs):
        raise TypeError(f"{layer._what()}.compute_output_shape: expected one input shape, got args={args!r}, "
                        f"kwargs={kwargs!r}")
    return args[0] if args else kwargs["input_shape"]


def _sample_shapes(layer, input_shape):
    """A batch shape (batch first) as one sample's shape, or a list of them for a merge layer."""
    def one(shape):
        if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__") or len(tuple(shape)) < 2:
            raise ValueError(f"{layer._what()}: expected a batch shape like (None, features), got {shape!r}")
        return _check_shape(tuple(shape)[1:], f"{layer._what()} input_shape")
    if layer.merges:
        if not isinstance(input_shape, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"{layer._what()}: expected a list of batch shapes, got {input_shape!r}")
        return [one(s) for s in input_shape]
    return one(input_shape)


BASE_CONFIG_KEYS = frozenset({"name", "trainable", "dtype", "input_shape"})  # every layer's config takes these


def flat_features(layer, input_shape) -> int:
    """The feature count of a flat input, or an error naming the layer."""
    if len(input_shape) != 1:
        raise ValueError(f"{type(layer).__name__} layer {layer.name!r} needs flat inputs, got shape "
                         f"{tuple(input_shape)}; put a Flatten() before it")
    return int(input_shape[0])


def layer_from_config(class_name: str, config: dict) -> Layer:
    """Rebuild a layer from ``get_config()`` output; only known classes and keys are accepted."""
    if class_name not in LAYER_CLASSES:
        raise ValueError(f"layer class: expected one of {sorted(LAYER_CLASSES)}, got {class_name!r}")
    unknown = set(config) - LAYER_CLASSES[class_name].config_keys - BASE_CONFIG_KEYS
    if unknown:
        raise ValueError(f"layer config for {class_name}: unknown keys {sorted(unknown)}")
    if not isinstance(config.get("name"), (str, type(None))):
        raise ValueError(f"layer config for {class_name}: name must be a string, got {config.get('name')!r}")
    cfg = dict(config)
    if class_name == "Dense" and cfg.get("kernel_initializer") == "custom":
        cfg["kernel_initializer"] = "glorot_uniform"
    if class_name == "Dense" and cfg.get("bias_initializer") == "custom":
        cfg["bias_initializer"] = "zeros"
    try:
        return LAYER_CLASSES[class_name](**cfg)
    except TypeError as exc:
        raise ValueError(f"layer config for {class_name}: {exc}") from None
