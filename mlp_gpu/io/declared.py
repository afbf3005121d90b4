"""What a model described by a config declares, found without allocating anything.

A config from a file is a claim: ``Dense(2000000)`` or an InputLayer of [100000, 100000] would take
gigabytes to build. The loaders compare these shapes with the datasets actually in the file, which
the guarded reader has checked against the bytes the file stores, and only then build the model.
"""
from __future__ import annotations

import math

import numpy as np

from .safe_h5 import H5Guard


def declared_weights(model) -> list[tuple[object, list[tuple[str, tuple[int, ...]]]]]:
    """[(layer, [(weight name, shape), ...])] for each layer with weights, in the model's order.

    For a model not yet built this is the shape pass of ``Sequential.build`` and nothing more: each
    layer's ``output_shape`` fixes its sizes, no buffer is made (a graph's layers ran it when wired).
    """
    if model.built:
        layers = [(layer, [tuple(w.shape) for w in layer.weight_views]) for layer in model.compute_layers]
    elif getattr(model, "_general", False):  # a graph: wiring it ran each layer's shape pass already
        layers = [(layer, [tuple(int(d) for d in s) for s in layer.param_shapes() + layer.state_shapes()]
                   [:len(layer.weight_names())]) for layer in model.compute_layers]
    else:
        shape = model._input_shape()
        if shape is None:
            raise ValueError("the model's input shape is not declared (no InputLayer or input_shape)")
        for layer in model.layers:
            shape = layer.output_shape(tuple(int(d) for d in shape))
        layers = []
        for layer in model.compute_layers:
            shapes = [tuple(int(d) for d in s) for s in layer.param_shapes() + layer.state_shapes()]
            layers.append((layer, shapes[:len(layer.weight_names())]))
    return [(layer, list(zip(layer.weight_names(), shapes))) for layer, shapes in layers if layer.weight_names()]


def declared_bytes(declared, itemsize=4) -> int:
    return sum(math.prod(shape) for _, weights in declared for _, shape in weights) * itemsize


def read_declared(guard: H5Guard, declared, datasets, exact=None) -> list:
    """Every weight as a float32 array, each dataset checked against its declared shape and dtype
    (floats, or exactly ``exact``) before any is read. ``datasets``: per layer of ``declared``, its
    datasets in order."""
    for (layer, weights), found in zip(declared, datasets):
        if len(found) != len(weights):
            guard.fail(_common(found) or "/", f"holds {len(found)} variables for layer {layer.name!r}, expected "
                                              f"{len(weights)} ({', '.join(n for n, _ in weights)})")
        for ds, (name, shape) in zip(found, weights):
            guard.check_dtype(ds.dtype, ds.name, "fiu" if name == "count" else "f")
            if tuple(ds.shape) != shape or (exact is not None and ds.dtype != exact):
                want = "float" if exact is None else np.dtype(exact).name
                guard.fail(ds.name, f"is {ds.dtype}{tuple(ds.shape)}, expected {want}{shape} for layer "
                                    f"{layer.name!r} ({name})")
    return [guard.read(ds, "float32") for found in datasets for ds in found]


def _common(datasets):
    return datasets[0].parent.name if datasets else None
