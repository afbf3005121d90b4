"""``pickle.dumps(model)`` and ``copy.deepcopy(model)`` (scikit-learn's clone, joblib's workers), as Keras
pickles a model: as the bytes of its model file. A built model travels as our HDF5 file (architecture,
weights, compile config, optimizer state and counters, io/hdf5.py); an unbuilt one as its config and
compile settings. The layers' ``trainable`` flags, compile's snapshot of them and Keras' other compile
options travel beside it. The copy predicts the same numbers and trains on from the same state.
"""
from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

from .. import losses, optimizers
from ..io import hdf5
from . import trainable as trainable_mod


def state(model) -> dict:
    """What ``restore`` needs to make an equal model."""
    if type(model).__module__ not in ("mlp_gpu.models.sequential", "mlp_gpu.models.functional"):
        raise pickle.PicklingError(f"model: a subclassed model ({type(model).__name__}) cannot be pickled from "
                                   "its config; pickle model.get_weights() and build it again")
    if model.dtype != "float32":
        raise pickle.PicklingError(f"model: dtype {model.dtype.name} (for gradient checks) has no model file; "
                                   "only float32 models pickle")
    if model.compiled and model.loss is None:
        raise pickle.PicklingError("model: compiled with loss=None; its file has no compile config to carry")
    image = None
    if model.built:
        model._claim_layers()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.h5"
            model.save(path)
            image = path.read_bytes()
    compiled = None
    if not model.built and model.compiled:
        compiled = {"loss": losses.serialize(model.loss), "optimizer": model.optimizer.get_config(),
                    "metrics": model.metrics}
    index = {id(layer): k for k, layer in enumerate(model.compute_layers)}
    backend = model.backend.name if model.backend is not None else model._backend_request
    return {"config": model.get_config(), "image": image, "compile": compiled,
            "backend": backend if isinstance(backend, (str, type(None))) else None,
            "trainable": [trainable_mod.is_trainable(layer) for layer in model.layers],
            "model_trainable": model.trainable,
            "frozen": sorted(index[i] for i in model._frozen_ids if i in index),
            "options": (model.run_eagerly, model.jit_compile, model.auto_scale_loss)}


def _make(cls, sequential_cls, config, backend):
    """The model ``config`` describes, as an instance of ``cls`` (a chain Model's config is a Sequential's)."""
    if cls is sequential_cls or "input_layers" in config:
        return cls.from_config(config, backend=backend)
    stack = sequential_cls.from_config(config, backend=backend)
    tensor = inputs = stack._input.output
    for layer in stack.layers:
        tensor = layer(tensor)
    return cls(inputs, tensor, name=config.get("name"), backend=backend)


def restore(cls, saved: dict, sequential_cls):
    """The model ``state`` described."""
    make = lambda config, backend: _make(cls, sequential_cls, config, backend)  # noqa: E731
    if saved["image"] is not None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.h5"
            path.write_bytes(saved["image"])
            model = hdf5.load_model(path, make, backend=saved["backend"])
    else:
        model = make(saved["config"], saved["backend"])
        if saved["compile"] is not None:
            spec = saved["compile"]
            model.compile(optimizer=optimizers.from_config(spec["optimizer"]), loss=losses.get(spec["loss"]),
                          metrics=spec["metrics"])
    model._trainable = saved["model_trainable"]
    for layer, flag in zip(model.layers, saved["trainable"]):
        layer.trainable = flag
    layers = model.compute_layers
    model._frozen_ids = {id(layers[k]) for k in saved["frozen"] if k < len(layers)}
    if model.built and model.compiled:
        model._inference_ids = trainable_mod.inference_layers(model, now=False)
        model._freeze = trainable_mod.make_freeze(model)
    model.run_eagerly, model.jit_compile, model.auto_scale_loss = saved["options"]
    return model
