"""``keras.models.load_model`` / ``keras.saving``: a model file read back into a model. The readers of io/
check the file and hand back its config and weights; this module makes the model the config describes
(``Sequential`` or ``Model``) and lets them fill it, so io/ never needs a model class."""
from __future__ import annotations

from ..io import hdf5, keras_zip
from ..utils import custom_object_scope
from .functional import Model
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
            model = keras_zip.load_keras(path, from_keras_config, backend=backend)
        else:
            model = hdf5.load_model(path, from_config, backend=backend)
    if not compile:
        model.loss = model.optimizer = None
        model.compiled_metrics, model.metric_slots, model.metrics = [], [], []
    return model
