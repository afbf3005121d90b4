"""Keras 3's ``Functional`` config in ``.keras`` files, both ways: each layer with its ``inbound_nodes``
(``{"args": [tensor or [tensors]], "kwargs": {}}``, a tensor being ``{"class_name": "__keras_tensor__",
"config": {"shape", "dtype", "keras_history": [layer, node, 0]}}``), ``input_layers`` and ``output_layers``.

The weights go where Keras 3 puts a functional model's: ``layers/<class in snake case>[_k]/vars`` for
every layer of ``model.layers`` in order (input_layer, dense, dense_1, concatenate ...), whatever the
layers are called; our model.layers follows Keras' order, so the k-th Dense is the k-th on both sides.
"""
from __future__ import annotations

import types

import numpy as np

from ..io import keras_zip
from ..layers.core import Input
from ..naming import snake_case
from . import graph_config

MODULE = "keras.src.models.functional"


def _tensor(model_layers, ref):
    name, index = ref
    shape = next(layer for layer in model_layers if layer.name == name)
    sample = shape.shape if isinstance(shape, Input) else shape.shape_out
    return {"class_name": "__keras_tensor__",
            "config": {"shape": [None, *sample], "dtype": "float32", "keras_history": [name, index, 0]}}


def _refs(refs, listed):
    return [[name, k, 0] for name, k in refs] if listed else [refs[0][0], refs[0][1], 0]


def functional_config(model) -> dict:
    """The model as Keras 3 serializes a Functional (with compile_config)."""
    entries, in_refs, out_refs = graph_config.wiring(model)
    layers = []
    for layer, calls in entries:
        if isinstance(layer, Input):
            cfg = {"batch_shape": [None, *layer.shape], "dtype": "float32", "sparse": False, "ragged": False,
                   "name": layer.name}
            layers.append(keras_zip._serialized("keras.layers", "InputLayer", cfg, name=layer.name,
                                                inbound_nodes=[]))
            continue
        first = [_tensor(model.layers, r)["config"]["shape"] for r in calls[0][0]]
        entry = keras_zip._layer_config(layer, first[0][1:] if not layer.merges else ())
        if layer.merges:
            entry["build_config"] = {"input_shape": first}
        nodes = []
        for refs, takes_list, training in calls:
            tensors = [_tensor(model.layers, r) for r in refs]
            nodes.append({"args": [tensors if takes_list else tensors[0]],
                          "kwargs": {} if training is None else {"training": training}})
        layers.append({**entry, "name": layer.name, "inbound_nodes": nodes})
    config = {"name": model.name, "trainable": True, "layers": layers,
              "input_layers": _refs(in_refs, len(in_refs) > 1 or model._inputs_listed),
              "output_layers": _refs(out_refs, len(out_refs) > 1 or model._outputs_listed)}
    return keras_zip._serialized(MODULE, "Functional", config, registered_name="Functional",
                                 build_config={"input_shape": None}, compile_config=_compile_config(model))


def _compile_config(model) -> dict:
    if model.optimizer is None or len(model.output_names) == 1:
        return keras_zip._compile_config(model)
    losses = model._losses
    single = keras_zip._compile_config(types.SimpleNamespace(optimizer=model.optimizer, loss=losses[0], metrics=[]))
    return {**single, "loss": [keras_zip._loss_config(loss) for loss in losses],
            "loss_weights": list(model._loss_weights), "metrics": [list(ms) for ms in model.metrics]}


def _history(value, arg):
    if not (isinstance(value, list) and len(value) >= 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool)):
        raise ValueError(f"{arg}: expected [layer name, node index, tensor index], got {value!r}")
    return value[0], value[1]


def _arg_refs(arg):
    """The tensors one call reads: a tensor dict or a list of them; (refs, given as a list)."""
    items = arg if isinstance(arg, list) else [arg]
    refs = []
    for item in items:
        if not isinstance(item, dict) or item.get("class_name") != "__keras_tensor__":
            raise ValueError(f"inbound_nodes: expected a __keras_tensor__ argument, got {item!r:.120}")
        refs.append(_history((item.get("config") or {}).get("keras_history"), "keras_history"))
    return refs, isinstance(arg, list)


def _layer_from_keras(entry):
    return keras_zip.layer_from_keras(entry.get("class_name"), entry.get("config") or {})


def functional_from_config(model_class, config, backend=None):
    """A Model from Keras' Functional config (layers, inbound_nodes, input_layers, output_layers)."""
    cfg = config.get("config") or {}
    layer_entries = cfg.get("layers")
    if not isinstance(layer_entries, list):
        raise ValueError("Functional config: expected a 'layers' list")
    entries = []
    for entry in layer_entries:
        if not isinstance(entry, dict):
            raise ValueError(f"Functional config: bad layer entry {entry!r:.120}")
        layer = _layer_from_keras(entry)
        calls = []
        for node in entry.get("inbound_nodes") or []:
            if isinstance(layer, Input):
                break
            args, kwargs = (node.get("args"), node.get("kwargs") or {}) if isinstance(node, dict) else (None, {})
            if not isinstance(args, list) or len(args) != 1 or set(kwargs) - {"training", "mask"}:
                raise ValueError(f"layer {layer.name!r}: expected inbound nodes with one argument (and training), "
                                 f"got {node!r:.160}")
            refs, listed = _arg_refs(args[0])
            calls.append((refs, listed, kwargs.get("training")))
        entries.append((layer, calls))

    def refs(value, arg):
        if isinstance(value, list) and value and isinstance(value[0], list):
            return [_history(v, arg) for v in value], True
        return [_history(value, arg)], False
    (in_refs, in_listed), (out_refs, out_listed) = refs(cfg.get("input_layers"), "input_layers"), \
        refs(cfg.get("output_layers"), "output_layers")

    def make(inputs, outputs):
        return model_class(inputs if in_listed else inputs[0], outputs if out_listed else outputs[0],
                           name=cfg.get("name"), backend=backend)
    return graph_config.rebuild(entries, in_refs, out_refs, make)


def keras_paths(layers) -> list[str]:
    """Keras 3's weight-file names of a functional model's layers: class in snake case, counted."""
    seen, paths = {}, []
    for layer in layers:
        base = "input_layer" if isinstance(layer, Input) else snake_case(type(layer).__name__)
        k = seen.get(base, 0)
        seen[base] = k + 1
        paths.append(base if k == 0 else f"{base}_{k}")
    return paths


def write_functional_weights(f, model) -> None:
    """The weights in Keras 3's functional layout (see the module docstring)."""
    f.create_group("vars").attrs["name"] = model.name
    group = f.create_group("layers")
    for path, layer in zip(keras_paths(model.layers), model.layers):
        g = group.create_group(path).create_group("vars")
        for i, (name, w) in enumerate(zip(layer.weight_names(), layer.weight_views)):
            g.create_dataset(str(i), data=model.backend.to_host(w).astype(np.int32 if name == "count" else np.float32))
