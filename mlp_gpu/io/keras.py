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


def export_keras_weights(model, path) -> None:
    """Write the model's weights so that ``keras.Model.load_weights(path)`` loads them into the
    same architecture built in Keras (layer names dense, dense_1, ... as Keras gives them)."""
    model._require_built("export_keras_weights")

    def write(f):
        f.create_group("vars").attrs["name"] = model.name
        layers = f.create_group("layers")
        for layer in model.layers:
            if type(layer).__name__ == "Input":
                continue  # Keras does not store its InputLayer
            g = layers.create_group(layer.name).create_group("vars")
            g.attrs["name"] = layer.name
            if hasattr(layer, "kernel"):
                g.create_dataset("0", data=model.backend.to_host(layer.kernel).astype(np.float32))
                g.create_dataset("1", data=model.backend.to_host(layer.bias).astype(np.float32))

    save_hdf5(path, write, sealed=False)  # a plain HDF5 file, as Keras writes it


def _natural(name):
    """dense < dense_1 < dense_2 < dense_10: Keras' creation order."""
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    return m.group(1), int(m.group(2) or 0)


def _keras3_pairs(f):
    groups = {name: g["vars"] for name, g in f["layers"].items() if "vars" in g}
    return {name: (v["0"], v["1"]) for name, v in groups.items() if "0" in v and "1" in v}


def _keras2_pairs(f):
    root = f["model_weights"] if "model_weights" in f else f
    pairs = {}
    for raw in root.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        names = [w.decode() if isinstance(w, bytes) else str(w) for w in root[name].attrs.get("weight_names", [])]
        if len(names) == 2:
            pairs[name] = (root[name][names[0]], root[name][names[1]])
    return pairs


def is_keras_file(f) -> bool:
    legacy_full = "model_weights" in f and "layer_names" in f["model_weights"].attrs
    return "layers" in f or "layer_names" in f.attrs or legacy_full


def read_keras_weights(f, model, path) -> list[np.ndarray]:
    """Kernels and biases for the model's Dense layers from an open Keras file, checked before use.

    Layers are matched by name when every Dense name is in the file, else by order.
    """
    pairs = _keras3_pairs(f) if "layers" in f else _keras2_pairs(f)
    dense = model.dense_layers
    if all(layer.name in pairs for layer in dense):
        chosen = [pairs[layer.name] for layer in dense]
    else:
        order = sorted(pairs, key=_natural) if "layers" in f else list(pairs)
        if len(order) != len(dense):
            raise ModelFileError(f"path: {str(path)!r} holds {len(order)} layers with kernel and bias "
                                 f"({', '.join(order)}); the model has {len(dense)} Dense layers")
        chosen = [pairs[name] for name in order]
    weights = []
    for layer, (kernel, bias) in zip(dense, chosen):
        for ds, shape, what in ((kernel, (layer.input_dim, layer.units), "kernel"), (bias, (layer.units,), "bias")):
            if tuple(ds.shape) != shape or ds.dtype.kind != "f":
                raise ModelFileError(f"path: {str(path)!r} {what} {ds.name!r} is {ds.dtype}{tuple(ds.shape)}, "
                                     f"expected float{shape} for layer {layer.name!r}")
            weights.append(np.asarray(ds[()], np.float32))
    return weights
