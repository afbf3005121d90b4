"""``keras.models.load_model``, ``save_model`` and ``model_from_json`` / ``keras.saving``: a model file read
back into a model. The readers of io/ check the file and hand back its config and weights; this module
makes the model the config describes (``Sequential`` or ``Model``) and lets them fill it, so io/ never
needs a model class."""
from __future__ import annotations

from ..io import hdf5, keras_zip
from ..io.bounded import load_json
from ..utils import custom_object_scope
from .functional import Model
from .keras_api import save_model as _save_model
from .keras_functional import functional_from_config
from .sequential import Sequential


def from_config(config, backend=None):
    """A model from our own config (``model.get_config()``): a graph of layers, or a stack."""
    graph = isinstance(config, dict) and config.get("class_name") == "Functional"
    return (Model if graph else Sequential).from_config(config, backend=backend)


def from_keras_config(config, backend=None):
    """A model from Keras 3's config.json: its Functional or its Sequential."""
    if isinstance(config, dict) and config.get("class_name") == "Functional":
        return functional_from_config(Model, config, backend)
    layers, name = keras_zip.layers_from_keras(config)
    return Sequential(layers, name=name, backend=backend)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, backend=None):
    """Keras' ``load_model``: the model in ``filepath`` (our HDF5, or a ``.keras`` zip), compiled as saved.

    ``custom_objects`` ({name: object}) resolves names a file refers to that mlp_gpu does not define
    (a custom ``kernel_initializer``, a traced loss); ``compile=False`` leaves the model uncompiled, for
    inference. ``safe_mode`` is Keras': True (the default) refuses a file whose layers carry code (a
    ``Lambda``). mlp_gpu never deserializes code, so that refusal holds for False too: False allows nothing
    more. Every file is read as hostile either way (docs/files.md, "Loading files you did not make").
    """
    if not isinstance(safe_mode, bool):
        raise TypeError(f"safe_mode: expected True or False, got {safe_mode!r}")
    with custom_object_scope(custom_objects):
        path = hdf5.checked_path(filepath)
        if str(path).endswith(".keras"):
            model = keras_zip.load_keras(path, from_keras_config, backend=backend, compile=compile)
        else:
            model = hdf5.load_model(path, from_config, backend=backend)
    if not compile:
        model.loss = model.optimizer = None
        model.compiled_metrics, model.metric_slots, model.metrics = [], [], []
    return model


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs) -> None:
    """Keras' ``save_model`` (the same as ``model.save(filepath, ...)``): a ``.keras`` path writes Keras 3's
    zip, any other path mlp_gpu's own sealed HDF5. ``overwrite=False`` on an existing file raises
    FileExistsError (Keras asks on the terminal instead); ``zipped=False`` is refused (Keras' folder layout)."""
    if not isinstance(model, Sequential):
        raise TypeError(f"save_model(model): expected a mlp_gpu Sequential or Model, got {type(model).__name__}")
    _save_model(model, filepath, overwrite, zipped, **kwargs)


def model_from_json(json_string, custom_objects=None):
    """Keras' ``model_from_json``: the (uncompiled, unbuilt until used) model of ``model.to_json()``'s string,
    ours or Keras 3's (a Sequential or a Functional of the layers both libraries have). The string is read
    as a file from a stranger: bounded in size and nesting, every layer config checked, no code run."""
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError(f"model_from_json(json_string): expected a JSON string, got {type(json_string).__name__}")
    config = load_json(json_string, "json_string", "model JSON", error=ValueError)
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ValueError("model_from_json(json_string): expected a serialized Keras model, a JSON object with "
                         "'class_name' and 'config'")
    with custom_object_scope(custom_objects):
        try:
            model = from_keras_config({k: v for k, v in config.items() if k != "compile_config"})
        except (TypeError, AttributeError, KeyError) as exc:
            raise ValueError(f"model_from_json(json_string): {exc}") from None
    return model
