"""Model and weight files (HDF5, float32): our own layout (hdf5.py) and Keras' (keras.py), both written
through files.py (safe writes, the seal, the file errors)."""
from .files import ModelFileError, SaveError
from .hdf5 import load_model as _load_model
from .hdf5 import load_weights, save_model, save_weights
from .keras import export_keras_weights

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "export_keras_weights", "ModelFileError",
           "SaveError"]


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, backend=None):
    """Keras' ``load_model``: the model in ``filepath`` (our HDF5, or a ``.keras`` zip), compiled as saved.

    ``custom_objects`` ({name: object}) resolves names a file refers to that mlp_gpu does not define
    (a custom ``kernel_initializer``); ``compile=False`` leaves the model uncompiled, for inference.
    ``safe_mode`` is Keras': True (the default) refuses a file whose layers carry code (a ``Lambda``).
    mlp_gpu never deserializes code, so that refusal holds for False too: False allows nothing more.
    Every file is read as hostile either way (README, "Loading files you did not make").
    """
    if not isinstance(safe_mode, bool):
        raise TypeError(f"safe_mode: expected True or False, got {safe_mode!r}")
    from ..utils import custom_object_scope

    with custom_object_scope(custom_objects):
        model = _load_model(filepath, backend=backend)
    if not compile:
        model.loss = model.optimizer = None
        model.compiled_metrics, model.metric_slots, model.metrics = [], [], []
    return model
