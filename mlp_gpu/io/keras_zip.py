"""Keras 3 ``.keras`` files: a zip (``zipfile``) of config.json, metadata.json and model.weights.h5 (h5py).

The layout is Keras' own (keras/src/saving/saving_lib.py)::

    metadata.json      {"keras_version": ..., "date_saved": ...}
    config.json        the serialized Sequential: InputLayer, Flatten, Dense configs; compile_config
    model.weights.h5   /layers/<name>/vars/0 (kernel), /1 (bias); /vars attrs name = model name

Both directions cover the layers both libraries have (Input, Flatten, Dense with our activations and
initializers), the compile config (loss, metrics, SGD/Adam and their settings) and the optimizer's
state: Keras keeps ``/optimizer/vars`` as 0 = iterations, 1 = learning rate, then per model variable
(kernel, bias of each Dense) its momentum (SGD with momentum) or momentum and velocity (Adam),
interleaved. Both use the same update formulas, so training goes on where it stopped, in either library.
"""
from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import zipfile

import h5py
import numpy as np

from .. import constraints, custom_objects, initializers, losses, optimizers, regularizers
from ..layers.activation import ACTIVATION_LAYERS, from_keras, keras_config
from ..layers.core import Dense, Flatten, Input
from ..layers.dropout import Dropout
from ..layers.layer_normalization import LayerNormalization, UnitNormalization
from ..layers.merging import MERGE_LAYERS, Concatenate
from ..layers.noise import AlphaDropout, GaussianDropout, GaussianNoise
from ..layers.reshaping import Identity, Rescaling, Reshape
from ..layers.normalization import BatchNormalization, Normalization
from ..naming import snake_case
from .bounded import MAX_ARCHIVE_BYTES, MAX_CONFIG_BYTES, load_json, read_member
from .declared import declared_weights
from .files import SEAL, ModelFileError, atomic_write_bytes, check_save_target
from .keras import read_keras_weights, write_keras3_weights
from .safe_h5 import COUNTERS, checked_int, open_h5, open_regular

log = logging.getLogger("mlp_gpu")
CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
KERAS_VERSION = "3.0.0"  # the oldest Keras 3 that reads what we write
DTYPE = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
# Our optimizer name -> Keras class name and the settings both share.
OPTIMIZERS = {"sgd": ("SGD", ("learning_rate", "momentum", "nesterov")),
              "adam": ("Adam", ("learning_rate", "beta_1", "beta_2", "epsilon"))}


def _serialized(module, class_name, config, **extra):
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None, **extra}


def _initializer(value):
    """Keras' serialized initializer: its class and its own config (orthogonal's gain, a seed)."""
    known = isinstance(value, initializers.Initializer) or (
        isinstance(value, str) and value in initializers.INITIALIZERS)
    init = initializers.get(value) if known else initializers.GlorotUniform()
    return _serialized("keras.initializers", type(init).__name__, init.get_config())


def _flatten_config(layer, base):
    return "Flatten", {**base, "data_format": "channels_last"}


def _dense_config(layer, base):
    activation = layer.activation  # a Python activation by name, as Keras writes a function
    if getattr(layer, "activation_fn", None) is not None:
        activation = custom_objects.serialize_function(layer.activation_fn)
    return "Dense", {**base, "units": layer.units, "activation": activation, "use_bias": layer.use_bias,
                     "kernel_initializer": _initializer(layer.kernel_initializer),
                     "bias_initializer": _initializer(layer.bias_initializer),
                     "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
                     "bias_regularizer": regularizers.serialize(layer.bias_regularizer),
                     "kernel_constraint": constraints.serialize(layer.kernel_constraint),
                     "bias_constraint": constraints.serialize(layer.bias_constraint)}


def _dropout_config(layer, base):
    return "Dropout", {**base, "rate": layer.rate, "seed": layer.seed, "noise_shape": None}


def _no_regularizers(layer, names):
    used = [n for n in names if getattr(layer, n, None) is not None]
    if used:
        raise ValueError(f"save: layer {layer.name!r} has {', '.join(used)}, which .keras files here do not carry")


def _batch_normalization_config(layer, base):
    _no_regularizers(layer, ("beta_regularizer", "gamma_regularizer"))
    return "BatchNormalization", {**base, "axis": -1, "momentum": layer.momentum, "epsilon": layer.epsilon,
                                  "center": layer.center, "scale": layer.scale,
                                  **{k: _initializer(v) for k, v in layer.initializer_names.items()},
                                  "beta_regularizer": None, "gamma_regularizer": None,
                                  "beta_constraint": None, "gamma_constraint": None, "synchronized": False}


def _normalization_config(layer, base):
    given = layer.input_mean is not None
    return "Normalization", {**base, "axis": [-1], "invert": layer.invert,
                             "mean": layer.input_mean.tolist() if given else None,
                             "variance": layer.input_variance.tolist() if given else None}


# One entry per layer class in each direction: ours -> Keras config, Keras config -> ours.
TO_KERAS = {"Flatten": _flatten_config, "Dense": _dense_config, "Dropout": _dropout_config,
            "BatchNormalization": _batch_normalization_config, "Normalization": _normalization_config}


def _layer_config(layer, input_shape):
    kind = type(layer).__name__
    if kind not in TO_KERAS:
        raise ValueError(f"save: layer {layer.name!r} ({kind}) has no Keras .keras form here; "
                         f"supported: Input, {', '.join(TO_KERAS)}")
    class_name, config = TO_KERAS[kind](layer, {"name": layer.name, "trainable": layer.trainable, "dtype": DTYPE})
    return _serialized("keras.layers", class_name, config, build_config={"input_shape": [None, *input_shape]})


def _loss_config(loss):
    """The loss's name, or Keras' serialized object when it carries arguments (from_logits=True)."""
    config = losses.serialize(loss)  # a user's loss by name, as Keras writes it; ours by name or config
    if isinstance(config, str) or not loss.builtin:
        return config
    return _serialized("keras.losses", config["class_name"], config["config"])


def _compile_config(model):
    if model.optimizer is None or model.loss is None:  # compile(loss=None) trains nothing: no compile config
        return {}
    opt = model.optimizer.get_config()
    kind = type(model.optimizer).__name__.lower()  # by class: a name may be the user's or Keras' 'rm_sprop'
    if kind not in OPTIMIZERS:
        raise ValueError(f"save: optimizer {kind!r} has no .keras form here; supported: {', '.join(OPTIMIZERS)}")
    extra = [k for k in ("amsgrad", "use_ema", "gradient_accumulation_steps") if opt.get(k)]
    if extra:  # Keras keeps their variables in another order in model.weights.h5: refused, not written wrong
        raise ValueError(f"save: optimizer {kind!r} with {', '.join(extra)} has no .keras form here; "
                         "save as .h5 (our layout keeps its whole state)")
    class_name, keys = OPTIMIZERS[kind]
    opt_config = {"name": opt["name"], **{k: opt[k] for k in keys if k in opt}}
    return {"optimizer": _serialized("keras.optimizers", class_name, opt_config),
            "loss": _loss_config(model.loss), "loss_weights": None, "metrics": list(model.metrics) or None,
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def model_config(model) -> dict:
    """The model as Keras serializes a Sequential (also what TensorBoard's graph plugin draws), or a
    graph of layers as Keras' Functional (the model's own keras_config: models/keras_functional.py)."""
    if getattr(model, "_general", False):
        return model.keras_config()
    shape = list(model.input_shape)
    input_name = next((layer.name for layer in model.layers if type(layer).__name__ == "Input"), "input_layer")
    layers = [_serialized("keras.layers", "InputLayer", {"batch_shape": [None, *shape], "dtype": "float32",
                                                         "sparse": False, "ragged": False, "name": input_name})]
    in_shape = tuple(shape)
    for layer in model.layers:
        if type(layer).__name__ != "Input":
            layers.append(_layer_config(layer, in_shape))
        in_shape = layer.shape_out
    config = {"name": model.name, "trainable": True, "dtype": DTYPE, "layers": layers,
              "build_input_shape": [None, *shape]}
    return _serialized("keras", "Sequential", config, build_config={"input_shape": [None, *shape]},
                       compile_config=_compile_config(model))


def _weights_image(model) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        if getattr(model, "_general", False):
            model.write_keras_weights(f)
        else:
            write_keras3_weights(f, model)
        if model.optimizer is not None:
            _write_optimizer(f.create_group("optimizer").create_group("vars"), model)
    return buffer.getvalue()


def _variable_shapes(model):
    """The trainable variables in Keras' order, which is also their order in our flat buffer."""
    return [shape for layer in model.layers for shape in layer.param_shapes()]


def _write_optimizer(group, model):
    opt = model.optimizer
    group.attrs["name"] = opt.name
    group.create_dataset("0", data=np.int64(opt.iterations))
    group.create_dataset("1", data=np.float32(opt.learning_rate))
    state = model.backend.to_host(opt.state).astype(np.float32)
    k, offset = 2, 0
    for shape in _variable_shapes(model):  # per variable, its slots interleaved, as Keras orders them
        size = int(np.prod(shape))
        for slot in state:
            group.create_dataset(str(k), data=slot[offset:offset + size].reshape(shape))
            k += 1
        offset += size


def _read_optimizer(g, model):
    """Restore iterations and the per-variable state when the file holds what our optimizer keeps;
    every array checked (float, the variable's shape) and the counter's range before any is read."""
    opt = model.optimizer
    group = g.group("optimizer/vars", required=False)
    shapes = _variable_shapes(model)
    if group is None or len(group) != 2 + opt.slots * len(shapes):
        log.warning("keras file: no optimizer state that fits %s; it starts afresh", opt.name)
        return
    slot_shapes = [s for s in shapes for _ in range(opt.slots)]
    datasets = [g.dataset(str(k), group, kinds="f", shape=s) for k, s in enumerate(slot_shapes, start=2)]
    iterations = checked_int(g.read(g.dataset("0", group, kinds="iu", shape=())), 0, COUNTERS["iterations"][1],
                             lambda problem: g.fail(f"{group.name}/0", f"(iterations) {problem}"))
    rate = float(g.read(g.dataset("1", group, kinds="f", shape=())))
    arrays = [g.read(ds, np.float32) for ds in datasets]
    state = np.stack([np.concatenate([a.ravel() for a in arrays[j::opt.slots]]) for j in range(opt.slots)]) \
        if opt.slots else np.zeros((0, int(model.params.size)), np.float32)  # the trainable buffer's size
    opt.load_state(state, iterations=iterations)
    opt.learning_rate = rate  # the current rate, which a callback may have changed (checked by the setter)


def save_keras(model, path) -> None:
    """Write ``model`` as a Keras 3 ``.keras`` file, safely (temp file, fsync, rename)."""
    model._require_built("save")
    check_save_target(path)
    config = json.dumps(model_config(model))
    metadata = json.dumps({"keras_version": KERAS_VERSION,
                           "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:  # stored, not deflated, as Keras writes it
        zf.writestr(METADATA, metadata)
        zf.writestr(CONFIG, config)
        zf.writestr(WEIGHTS, _weights_image(model))
    atomic_write_bytes(path, buffer.getvalue())


# ---- reading ---------------------------------------------------------------------------------------
def _input_from_keras(cfg):
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if not isinstance(shape, list) or len(shape) < 2:
        raise ValueError(f"InputLayer batch_shape: expected [null, d1, ...], got {shape!r}")
    return Input(shape[1:], name=cfg.get("name"))


def _flatten_from_keras(cfg):
    return Flatten(name=cfg.get("name"))


def _initializer_name(value):
    if isinstance(value, dict):
        value = snake_case(str(value.get("class_name", "")))
    if value not in initializers.INITIALIZERS:  # only fresh weights would use it; the file's are loaded
        log.warning("keras file: initializer %r is not in mlp_gpu; glorot_uniform stands in", value)
        return "glorot_uniform"
    return value


def _dense_from_keras(cfg):
    if cfg.get("activity_regularizer") is not None:
        raise ValueError(f"Dense {cfg.get('name')!r}: activity_regularizer not supported")
    activation = cfg.get("activation")
    if custom_objects.is_custom(activation):
        activation = custom_objects.deserialize(activation, f"Dense {cfg.get('name')!r} activation")
    return Dense(cfg.get("units"), activation, use_bias=cfg.get("use_bias", True), name=cfg.get("name"),
                 kernel_regularizer=_regularizer(cfg.get("kernel_regularizer")),
                 bias_regularizer=_regularizer(cfg.get("bias_regularizer")),
                 kernel_constraint=constraints.get(cfg.get("kernel_constraint")),
                 bias_constraint=constraints.get(cfg.get("bias_constraint")),
                 kernel_initializer=_initializer_name(cfg.get("kernel_initializer", "glorot_uniform")),
                 bias_initializer=_initializer_name(cfg.get("bias_initializer", "zeros")))


def _regularizer(config):
    return None if config is None else regularizers.deserialize(config)


def layer_from_keras(kind, cfg):
    """Our layer of one entry of a Keras config (``kind`` its class_name), with its trainable flag."""
    if kind not in FROM_KERAS:
        raise ValueError(f"layer class {kind!r} is not supported; supported: {', '.join(FROM_KERAS)}")
    if not isinstance(cfg, dict):
        raise ValueError(f"layer {kind}: expected its config as a JSON object, got {type(cfg).__name__}")
    trainable = cfg.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ValueError(f"layer {kind} {cfg.get('name')!r}: trainable: expected true or false, got {trainable!r}")
    layer = FROM_KERAS[kind](cfg)
    layer.trainable = trainable
    return layer


def _dropout_from_keras(cfg):
    return Dropout(cfg.get("rate"), noise_shape=cfg.get("noise_shape"), seed=cfg.get("seed"), name=cfg.get("name"))


def _batch_normalization_from_keras(cfg):
    inits = {k: _initializer_name(cfg[k]) for k in ("beta_initializer", "gamma_initializer",
                                                    "moving_mean_initializer", "moving_variance_initializer")
             if k in cfg}
    extras = [k for k in ("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint")
              if cfg.get(k) is not None]
    if extras or cfg.get("synchronized") or cfg.get("renorm"):
        raise ValueError(f"BatchNormalization {cfg.get('name')!r}: "
                         f"{', '.join(extras) or 'synchronized/renorm'} not supported")
    return BatchNormalization(axis=cfg.get("axis", -1), momentum=cfg.get("momentum", 0.99),
                              epsilon=cfg.get("epsilon", 1e-3), center=cfg.get("center", True),
                              scale=cfg.get("scale", True), name=cfg.get("name"), **inits)


def _normalization_from_keras(cfg):
    return Normalization(axis=cfg.get("axis", -1), mean=cfg.get("mean"), variance=cfg.get("variance"),
                         invert=cfg.get("invert", False), name=cfg.get("name"))


def _merge_config(layer, base):
    return type(layer).__name__, ({**base, "axis": layer.axis} if isinstance(layer, Concatenate) else base)


def _merge_from_keras(cls):
    def make(cfg):
        return cls(axis=cfg.get("axis", -1), name=cfg.get("name")) if cls is Concatenate else cls(name=cfg.get("name"))
    return make


TO_KERAS.update({name: _merge_config for name in MERGE_LAYERS})  # merge layers: graphs only
TO_KERAS.update({name: keras_config for name in ACTIVATION_LAYERS})
# Layers whose get_config has Keras' keys and values: the same config both ways (Keras' dtype dropped)
SAME_CONFIG = {cls.__name__: cls for cls in (LayerNormalization, UnitNormalization, GaussianNoise, GaussianDropout,
                                             AlphaDropout, Reshape, Rescaling, Identity)}


def _same_config(layer, base):
    config = {**base, **{k: v for k, v in layer.get_config().items() if k not in ("input_shape", "dtype")}}
    if "seed" in config:  # the seed given, as _dropout_config (Keras takes no drawn 64-bit key)
        config["seed"] = layer.seed
    return type(layer).__name__, config


def _same_from_keras(cls):
    def make(cfg):
        # Keras' dtype (a DTypePolicy dict) is not passed on, as by the other readers: layers take the model's
        return cls(**{k: v for k, v in cfg.items() if k in cls.config_keys and k not in ("input_shape", "dtype")})
    return make


TO_KERAS.update({name: _same_config for name in SAME_CONFIG})
FROM_KERAS = {"InputLayer": _input_from_keras, "Flatten": _flatten_from_keras, "Dense": _dense_from_keras,
              "Dropout": _dropout_from_keras, "BatchNormalization": _batch_normalization_from_keras,
              "Normalization": _normalization_from_keras,
              **{name: _merge_from_keras(cls) for name, cls in MERGE_LAYERS.items()},
              **{name: from_keras(cls) for name, cls in ACTIVATION_LAYERS.items()},
              **{name: _same_from_keras(cls) for name, cls in SAME_CONFIG.items()}}


def layers_from_keras(config) -> tuple[list, str | None]:
    """(layers, name) of a Keras Sequential config; models/saving.py makes the model of them."""
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        raise ValueError(f"expected a Keras Sequential or Functional model, got class {config.get('class_name')!r}"
                         if isinstance(config, dict) else "config.json is not a JSON object")
    layers = []
    entries = (config.get("config") or {}).get("layers", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError("config.json: a Sequential's layers: expected a list of layer objects")
    for entry in entries:
        layers.append(layer_from_keras(entry.get("class_name"), entry.get("config") or {}))
    build_shape = config.get("config", {}).get("build_input_shape")
    if layers and type(layers[0]).__name__ != "Input" and isinstance(build_shape, list):
        layers.insert(0, Input(build_shape[1:]))
    return layers, config.get("config", {}).get("name")


def _named(value):
    """A Keras name from a string or a serialized object: "mse", or {"class_name": "MeanSquaredError"}."""
    return value if isinstance(value, str) else snake_case(str(value.get("class_name", "")))


def _compile_from_keras(model, cfg):
    opt = cfg.get("optimizer") or "sgd"
    name = (opt if isinstance(opt, str) else str(opt.get("class_name", ""))).lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r} is not supported; supported: {', '.join(OPTIMIZERS)}")
    settings = opt.get("config", {}) if isinstance(opt, dict) else {}
    optimizer = optimizers.get(name)
    optimizer = type(optimizer)(**{k: settings[k] for k in OPTIMIZERS[name][1] if k in settings})
    loss, metrics = cfg.get("loss"), cfg.get("metrics") or []
    if isinstance(loss, list):  # several outputs: one loss and one metrics list each, and their weights
        model.compile(loss=[_one_loss(v) for v in loss], optimizer=optimizer, loss_weights=cfg.get("loss_weights"),
                      metrics=[[_metric(m) for m in (ms if isinstance(ms, list) else [ms])] if ms else None
                               for ms in metrics] or None)
        return
    model.compile(loss=_one_loss(loss), optimizer=optimizer, metrics=[_metric(m) for m in metrics])


def _one_loss(loss):
    if custom_objects.is_custom(loss):
        return loss  # a user's loss, found in load_model's custom_objects by losses.get
    if isinstance(loss, dict) and loss.get("class_name") in losses.LOSSES:  # Keras' config: our arguments
        return {"class_name": loss["class_name"], "config": dict(loss.get("config") or {})}
    return {"mean_squared_error": "mse"}.get(_named(loss), _named(loss))


def _metric(metric):
    return metric if custom_objects.is_custom(metric) else _named(metric)


MAX_WEIGHTS_BYTES = 8 << 30  # model.weights.h5 is read into memory: refuse a member past 8 GiB


def load_keras(path, make_model, backend=None, compile=True):
    """A Sequential from a Keras 3 ``.keras`` file: architecture, weights and (if ``compile``) loss,
    metrics and optimizer settings. Anything outside what both libraries share is a ModelFileError.
    The config is checked against the weights in model.weights.h5 before the model is built."""
    config, weights = _read_archive(path)
    with _unreadable_weights(path), open_h5(weights, f"{path}:{WEIGHTS}", what=f"an HDF5 {WEIGHTS}") as g:
        try:
            model = make_model(config, backend)
            declared = declared_weights(model)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"path: {str(path)!r}: {exc}") from None
        arrays = read_keras_weights(g, declared)
        try:
            model.build()
            if compile and config.get("compile_config"):
                _compile_from_keras(model, config["compile_config"])
        except (TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"path: {str(path)!r}: {exc}") from None
        model.set_weights(arrays)
        if model.optimizer is not None:
            _read_optimizer(g, model)
    return model


@contextlib.contextmanager
def _unreadable_weights(path):
    try:
        yield
    except ModelFileError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ModelFileError(f"path: {str(path)!r} has an unreadable {WEIGHTS} ({exc})") from None


def _read_archive(path):
    """(config, the bytes of model.weights.h5) of a .keras file, each member read under a limit."""
    budget = [MAX_ARCHIVE_BYTES]
    try:
        with open_regular(path, ModelFileError, "a .keras file") as fh, zipfile.ZipFile(fh, "r") as zf:
            text = read_member(zf, CONFIG, str(path), MAX_CONFIG_BYTES, budget)
            weights = read_member(zf, WEIGHTS, str(path), MAX_WEIGHTS_BYTES, budget)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, (ModelFileError, FileNotFoundError)):
            raise
        raise ModelFileError(f"path: {str(path)!r} is not a valid .keras file ({exc})") from None
    return load_json(text, str(path), CONFIG), weights


def save_weights_file(model, path) -> None:
    """Keras 3's ``model.save_weights("m.weights.h5")``: the model's weights, and a compiled model's
    optimizer state, exactly as model.weights.h5 inside a .keras file (what Keras' load_weights reads)."""
    model._require_built("save_weights")
    check_save_target(path)
    atomic_write_bytes(path, _weights_image(model))


def is_keras_weights_file(path) -> bool:
    """Whether ``path`` is plain HDF5 as Keras writes it, not one of mlp_gpu's sealed files (which open
    with the seal's user block)."""
    with open_regular(path, ModelFileError, "a weights file") as fh:
        head = fh.read(len(SEAL))
    return head != SEAL


def load_weights_file(model, path) -> None:
    """Keras 3's ``model.load_weights("m.weights.h5")``: every layer's weights (checked against the model
    before any is set), then, for a compiled model, the optimizer state when the file holds one that fits."""
    with _unreadable_weights(path), open_h5(path, str(path), what="a Keras .weights.h5 file") as g:
        arrays = read_keras_weights(g, declared_weights(model))
        model.set_weights(arrays)
        if model.optimizer is not None and "optimizer" in g.file:
            _read_optimizer(g, model)


def load_keras_weights(model, path) -> None:
    """Keras' ``model.load_weights("m.keras")``: the weights of a .keras file into a model of the same
    layers (nothing changes unless all of them fit); the file's architecture and optimizer are not read."""
    _, weights = _read_archive(path)
    with _unreadable_weights(path), open_h5(weights, f"{path}:{WEIGHTS}", what=f"an HDF5 {WEIGHTS}") as g:
        arrays = read_keras_weights(g, declared_weights(model))
    model.set_weights(arrays)
