"""Keras weight files: export to the Keras 3 ``.weights.h5`` layout, import Keras 3 and Keras 2 files.

Keras 3 (``model.save_weights("m.weights.h5")``)::

    /vars                     attrs: name = model name
    /layers/<layer>/vars      attrs: name = layer name
    /layers/dense/vars/0      kernel (inputs, units)   -- the same (in, out) layout as mlp_gpu
    /layers/dense/vars/1      bias (units,)

Keras 2 legacy ``.h5`` (weights-only, or a full model under /model_weights): root attr
``layer_names``; each layer group has attr ``weight_names`` such as ``dense/kernel:0``.
"""
from __future__ import annotations

import re

import numpy as np

from ..naming import snake_case
from .declared import read_declared
from .files import ModelFileError, save_hdf5


def keras_paths(layers) -> list[str]:
    """Keras 3's group names of a Sequential's layers in its weight files: each layer's class in snake case,
    counted per class (dense, dense_1, dropout, ...), whatever the layers are called; the layer's own name
    goes in the group's ``name`` attribute."""
    seen, paths = {}, []
    for layer in layers:
        base = _keras_base(layer)
        k = seen.get(base, 0)
        seen[base] = k + 1
        paths.append(base if k == 0 else f"{base}_{k}")
    return paths


def write_keras3_weights(f, model) -> None:
    """Fill an open HDF5 file with the model's weights in Keras 3's layout (groups dense, dense_1, ... as
    Keras names them, see ``keras_paths``); each layer's variables in Keras' order (BatchNormalization:
    gamma, beta, moving_mean, moving_variance; Normalization: mean, variance, count as int32)."""
    f.create_group("vars").attrs["name"] = model.name
    layers = f.create_group("layers")
    stack = [layer for layer in model.layers if type(layer).__name__ != "Input"]  # Keras does not store its InputLayer
    for path, layer in zip(keras_paths(stack), stack):
        g = layers.create_group(path).create_group("vars")
        g.attrs["name"] = layer.name
        for i, (name, w) in enumerate(zip(layer.weight_names(), layer.weight_views)):
            dtype = np.int32 if name == "count" else np.float32
            g.create_dataset(str(i), data=model.backend.to_host(w).astype(dtype))


def export_keras_weights(model, path) -> None:
    """Write the model's weights so that ``keras.Model.load_weights(path)`` loads them into the
    same architecture built in Keras."""
    model._require_built("export_keras_weights")
    write = model.write_keras_weights if getattr(model, "_general", False) else \
        (lambda f: write_keras3_weights(f, model))  # a graph: Keras' functional layout
    save_hdf5(path, write, sealed=False)  # plain HDF5, as Keras writes it


def _natural(name):
    """dense < dense_1 < dense_2 < dense_10: Keras' creation order."""
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    return m.group(1), int(m.group(2) or 0)


def _keras3_layers(g):
    """{layer name: [its variables in order]} for the layers that have any, every one checked by the guard."""
    layers = g.group("layers")
    found = {}
    for name in layers:
        entry = g.group(name, layers)
        v = g.group("vars", entry, required=False)
        if v is None or not len(v):
            continue
        names = set(v)
        if names != {str(i) for i in range(len(names))}:
            g.fail(v.name, f"holds variables {sorted(names)[:8]}, expected 0 to {len(names) - 1}")
        found[name] = [g.dataset(str(i), v) for i in range(len(names))]
    return found


def _text(value, g, where):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        g.fail(where, f"lists {type(value).__name__} {value!r}, expected names")
    return value


def _names(g, obj, name):
    """A Keras 2 name list attribute (layer_names, weight_names) as strings."""
    value = g.attr(obj, name, default=[])
    value = value if isinstance(value, (list, np.ndarray)) else [value]
    return [_text(v, g, f"{obj.name}@{name}") for v in np.asarray(value, dtype=object).ravel()]


def _keras2_layers(g):
    root = g.group("model_weights") if "model_weights" in g.file else g.file
    found = {}
    for name in _names(g, root, "layer_names"):
        layer = g.group(name, root)
        weights = _names(g, layer, "weight_names")
        if weights:
            found[name] = [g.dataset(w, layer) for w in weights]
    return found


def is_keras_file(g) -> bool:
    f = g.file
    legacy_full = "model_weights" in f and "layer_names" in g.group("model_weights").attrs
    return "layers" in f or "layer_names" in f.attrs or legacy_full


def _keras_base(layer) -> str:
    return snake_case(type(layer).__name__)


def _match_by_order(found, ours, keras3, path):
    """Pair our layers with the file's: the k-th layer of each kind (dense, batch_normalization...)
    with the file's k-th of that kind, in Keras' creation order (Keras 2 files list it)."""
    kinds: dict[str, list] = {}
    for name in (sorted(found, key=_natural) if keras3 else found):
        kinds.setdefault(_natural(name)[0] if keras3 else None, []).append(name)
    chosen, used = [], {}
    for layer in ours:
        kind = _keras_base(layer) if keras3 else None
        names = kinds.get(kind, [])
        k = used.get(kind, 0)
        if k >= len(names):
            raise ModelFileError(f"path: {str(path)!r} holds {len(found)} layers with weights ({', '.join(found)}); "
                                 f"none left for the model's layer {layer.name!r} ({type(layer).__name__})")
        used[kind] = k + 1
        chosen.append(found[names[k]])
    if sum(used.values()) != len(found):
        raise ModelFileError(f"path: {str(path)!r} holds {len(found)} layers with weights ({', '.join(found)}); "
                             f"the model has {len(ours)}")
    return chosen


def read_keras_weights(g, declared) -> list[np.ndarray]:
    """Every weight the model declares (``declared_weights``) from a guarded Keras file, checked before use.

    A Keras 3 file's layers are matched as Keras matches them: the k-th layer of a class with the file's
    k-th group of that class (its groups are named by class, not by layer name); files written by mlp_gpu
    before it named groups that way are matched by layer name. A Keras 2 file's layers are matched by
    name when every name is in the file, else in order.
    """
    keras3 = "layers" in g.file
    found = _keras3_layers(g) if keras3 else _keras2_layers(g)
    ours = [layer for layer, _ in declared]
    by_name = all(layer.name in found for layer in ours)
    if keras3:
        try:
            chosen = _match_by_order(found, ours, keras3, g.label)
        except ModelFileError:
            if not by_name:
                raise
            chosen = [found[layer.name] for layer in ours]
    elif by_name:
        chosen = [found[layer.name] for layer in ours]
    else:
        chosen = _match_by_order(found, ours, keras3, g.label)
    return read_declared(g, declared, chosen)
