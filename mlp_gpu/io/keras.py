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

from .files import ModelFileError, save_hdf5


def write_keras3_weights(f, model) -> None:
    """Fill an open HDF5 file with the model's weights in Keras 3's layout (layer names dense, dense_1,
    ... as Keras gives them); each layer's variables in Keras' order (BatchNormalization: gamma, beta,
    moving_mean, moving_variance; Normalization: mean, variance, count as int32)."""
    f.create_group("vars").attrs["name"] = model.name
    layers = f.create_group("layers")
    for layer in model.layers:
        if type(layer).__name__ == "Input":
            continue  # Keras does not store its InputLayer
        g = layers.create_group(layer.name).create_group("vars")
        g.attrs["name"] = layer.name
        for i, (name, w) in enumerate(zip(layer.weight_names(), layer.weight_views)):
            dtype = np.int32 if name == "count" else np.float32
            g.create_dataset(str(i), data=model.backend.to_host(w).astype(dtype))


def export_keras_weights(model, path) -> None:
    """Write the model's weights so that ``keras.Model.load_weights(path)`` loads them into the
    same architecture built in Keras."""
    model._require_built("export_keras_weights")
    save_hdf5(path, lambda f: write_keras3_weights(f, model), sealed=False)  # plain HDF5, as Keras writes it


def _natural(name):
    """dense < dense_1 < dense_2 < dense_10: Keras' creation order."""
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    return m.group(1), int(m.group(2) or 0)


def _keras3_layers(f):
    """{layer name: [its variables in order]} for the layers that have any."""
    found = {}
    for name, g in f["layers"].items():
        v = g.get("vars") if hasattr(g, "get") else None
        if v is not None and len(v) and all(str(i) in v for i in range(len(v))):
            found[name] = [v[str(i)] for i in range(len(v))]
    return found


def _keras2_layers(f):
    root = f["model_weights"] if "model_weights" in f else f
    found = {}
    for raw in root.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        names = [w.decode() if isinstance(w, bytes) else str(w) for w in root[name].attrs.get("weight_names", [])]
        if names:
            found[name] = [root[name][n] for n in names]
    return found


def is_keras_file(f) -> bool:
    legacy_full = "model_weights" in f and "layer_names" in f["model_weights"].attrs
    return "layers" in f or "layer_names" in f.attrs or legacy_full


def _keras_base(layer) -> str:
    return re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", type(layer).__name__).lower()


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


def read_keras_weights(f, model, path) -> list[np.ndarray]:
    """Every weight of the model's layers from an open Keras file, checked before use.

    Layers are matched by name when every name is in the file, else by kind and order.
    """
    keras3 = "layers" in f
    found = _keras3_layers(f) if keras3 else _keras2_layers(f)
    ours = [layer for layer in model.compute_layers if layer.weight_names()]
    if all(layer.name in found for layer in ours):
        chosen = [found[layer.name] for layer in ours]
    else:
        chosen = _match_by_order(found, ours, keras3, path)
    weights = []
    for layer, datasets in zip(ours, chosen):
        names = layer.weight_names()
        if len(datasets) != len(names):
            raise ModelFileError(f"path: {str(path)!r} has {len(datasets)} variables for layer {layer.name!r}, "
                                 f"expected {len(names)} ({', '.join(names)})")
        for ds, name, w in zip(datasets, names, layer.weight_views):
            kinds = "fiu" if name == "count" else "f"
            if tuple(ds.shape) != tuple(w.shape) or ds.dtype.kind not in kinds:
                raise ModelFileError(f"path: {str(path)!r} {name} {ds.name!r} is {ds.dtype}{tuple(ds.shape)}, "
                                     f"expected float{tuple(w.shape)} for layer {layer.name!r}")
            weights.append(np.asarray(ds[()], np.float32))
    return weights
