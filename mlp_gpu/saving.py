"""``keras.saving``: load_model and save_model, the registry of custom objects, and Keras' general
serialize_keras_object / deserialize_keras_object.

An object serializes to Keras' dict ``{"module", "class_name", "config", "registered_name"}``: mlp_gpu's own
layers, losses, metrics, optimizers, schedules, initializers and regularizers under Keras' module names
("keras.layers", ...), a user's class under the name register_keras_serializable gave it, a function by
name. Deserializing never runs code from the config: every name resolves to a class or function already in
this process (mlp_gpu's, ``custom_objects``, a custom_object_scope or the registry).
"""
from __future__ import annotations

import os
import types

import numpy as np

from . import custom_objects as custom_objects_mod
from . import activations, initializers, losses, metrics, optimizers, regularizers
from .layers.base import LAYER_CLASSES, Layer, layer_from_config
from .models import saving as models_saving
from .models.sequential import Sequential
from .optimizers import schedules
from .utils import (CustomObjectScope, custom_object_scope, get_custom_object, get_custom_objects,  # noqa: F401
                    get_registered_name, register_keras_serializable)

__all__ = ["load_model", "save_model", "register_keras_serializable", "get_custom_objects", "custom_object_scope",
           "CustomObjectScope", "get_registered_name", "serialize_keras_object", "deserialize_keras_object"]


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Keras' ``keras.saving.load_model``: see :func:`mlp_gpu.models.load_model` (which also takes ``backend``)."""
    return models_saving.load_model(filepath, custom_objects, compile, safe_mode)


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """Keras' ``keras.saving.save_model``: ``model.save(filepath)`` (``.keras``: Keras 3's zip; ``.h5``: our
    sealed HDF5 with the optimizer state).

    Where Keras would ask on the terminal whether to replace an existing file (``overwrite=False``), this
    raises FileExistsError. ``zipped=False`` (an unzipped folder, for the Hugging Face Hub) is not supported.
    ``include_optimizer=True`` and ``save_format`` matching the suffix are taken, as Keras takes them.
    """
    if not hasattr(model, "save") or not hasattr(model, "get_config"):
        raise TypeError(f"save_model(model): expected an mlp_gpu model, got {type(model).__name__}")
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"save_model(filepath): expected a str or path, got {type(filepath).__name__}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"save_model(overwrite): expected True or False, got {overwrite!r}")
    if zipped not in (None, True):
        raise ValueError(f"save_model(zipped): only None or True (a file) are supported, got {zipped!r}")
    if kwargs.pop("include_optimizer", True) is not True:
        raise ValueError("save_model(include_optimizer): only True; save the weights alone with "
                         "model.save_weights(path)")
    save_format = kwargs.pop("save_format", None)
    path = os.fspath(filepath)
    if save_format and not path.endswith((".h5", ".hdf5", ".keras")):
        raise ValueError(f"save_model(save_format={save_format!r}): deprecated in Keras 3; give filepath a .keras "
                         "or .h5 suffix instead")
    if kwargs:
        raise ValueError(f"save_model: the following argument(s) are not supported: {list(kwargs)}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"save_model(filepath): {path!r} exists and overwrite=False")
    model.save(filepath)


# ---- serialize_keras_object ---------------------------------------------------------------------------
def _by_get(get, cls, config):
    """A loss or metric through its family's ``get``, which reads what their get_config writes: Keras' dict,
    or our shorter forms (a name string, or a whole {"class_name", "config"} dict)."""
    if isinstance(config, str) or (isinstance(config, dict) and "class_name" in config):
        return get(config)
    return get({"class_name": cls.__name__, "config": config})


# mlp_gpu's object families: the base class, Keras' module name, and how a config becomes an object again.
_FAMILIES = [
    (Sequential, "keras", lambda cls, config: models_saving.from_config(config)),
    (Layer, "keras.layers", lambda cls, config: layer_from_config(cls.__name__, config)),
    (losses.Loss, "keras.losses", lambda cls, config: _by_get(losses.get, cls, config)),
    (metrics.Metric, "keras.metrics", lambda cls, config: _by_get(metrics.get, cls, config)),
    (optimizers.Optimizer, "keras.optimizers",
     lambda cls, config: optimizers.deserialize({"class_name": cls.__name__, "config": config})),
    (schedules.LearningRateSchedule, "keras.optimizers.schedules",
     lambda cls, config: schedules.deserialize({"class_name": cls.__name__, "config": config})),
    (initializers.Initializer, "keras.initializers", lambda cls, config: cls(**config)),
    (regularizers.Regularizer, "keras.regularizers",
     lambda cls, config: regularizers.deserialize({"class_name": cls.__name__, "config": config})),
]
# where mlp_gpu keeps each family's classes, by Keras' module name
_MODULES = {"keras.losses": losses, "keras.metrics": metrics, "keras.optimizers": optimizers,
            "keras.optimizers.schedules": schedules, "keras.initializers": initializers,
            "keras.regularizers": regularizers}
_FUNCTION_MODULES = (activations, losses, metrics)  # where a built-in function named in a config is looked up


def _ours(cls) -> bool:
    return cls.__module__.split(".")[0] == "mlp_gpu"


def serialize_keras_object(obj):
    """Keras' ``serialize_keras_object``: a JSON-ready form of ``obj`` (None, numbers, strings, lists and
    dicts of them, NumPy values, functions, and objects with ``get_config``)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": obj.tolist(), "dtype": str(obj.dtype)}}
    if isinstance(obj, (list, tuple)):  # a tuple stays a tuple, as in Keras (JSON makes it a list)
        return type(obj)(serialize_keras_object(x) for x in obj) if isinstance(obj, tuple) else \
            [serialize_keras_object(x) for x in obj]
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        if obj.__name__ == "<lambda>":
            raise ValueError("serialize_keras_object: a lambda cannot be named in a config; mlp_gpu never stores "
                             "code: use a named function (with @register_keras_serializable)")
        return custom_objects_mod.serialize_function(obj)
    if not hasattr(obj, "get_config"):
        raise TypeError(f"serialize_keras_object: cannot serialize a {type(obj).__name__}: it has no get_config()")
    cls = type(obj)
    config = serialize_keras_object(obj.get_config())
    if _ours(cls):
        module = next((name for base, name, _ in _FAMILIES if isinstance(obj, base)), cls.__module__)
        return {"module": module, "class_name": cls.__name__, "config": config, "registered_name": None}
    return {"module": cls.__module__, "class_name": cls.__name__, "config": config,
            "registered_name": get_registered_name(cls)}


# ---- deserialize_keras_object -------------------------------------------------------------------------
def _lookup(name, custom_objects, module_objects):
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    found = get_custom_object(name)
    return found if found is not None else (module_objects or {}).get(name)


def _builtin_class(module, class_name):
    """mlp_gpu's class that Keras' module and class name denote, or None."""
    if module in ("keras", "keras.models") or str(module).startswith("keras.src.models"):
        return Sequential if class_name in ("Sequential", "Functional", "Model") else None
    cls = LAYER_CLASSES.get(class_name) if module == "keras.layers" else getattr(_MODULES.get(module), class_name,
                                                                                   None)
    return cls if isinstance(cls, type) and _ours(cls) else None


def _builtin_function(name):
    for module in _FUNCTION_MODULES:
        fn = getattr(module, name, None)
        if callable(fn) and not isinstance(fn, type) and getattr(fn, "__module__", "").startswith("mlp_gpu"):
            return fn
    return None


MAX_NUMPY_VALUES = 1 << 24  # an array inside a config (a stranger's file): 16 M numbers at most


def _numpy_value(config):
    """Keras' serialized NumPy value: numbers only (bool, int, float), of a bounded size."""
    if not isinstance(config, dict) or "value" not in config or "dtype" not in config:
        raise ValueError(f"deserialize_keras_object: a __numpy__ config needs 'value' and 'dtype', got {config!r}")
    try:
        dtype = np.dtype(config["dtype"])
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biuf":
        raise ValueError("deserialize_keras_object: __numpy__ dtype: expected a numeric dtype, "
                         f"got {config['dtype']!r}")
    value = np.asarray(config["value"], dtype=object)
    if value.size > MAX_NUMPY_VALUES:
        raise ValueError(f"deserialize_keras_object: __numpy__ value: more than {MAX_NUMPY_VALUES} numbers")
    try:
        return value.astype(dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"deserialize_keras_object: __numpy__ value is not {dtype} numbers: {exc}") from None


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """Keras' ``deserialize_keras_object``: the object a :func:`serialize_keras_object` form describes.

    Names resolve in ``custom_objects``, then any custom_object_scope and the registry, then
    ``module_objects`` (a keyword, as Keras takes it), then mlp_gpu's own classes and functions.
    ``safe_mode`` is Keras': mlp_gpu refuses code in a config (a lambda) whatever it says.
    """
    module_objects = kwargs.pop("module_objects", None)
    kwargs.pop("printable_module_name", None)
    if kwargs:
        raise ValueError(f"deserialize_keras_object: unexpected arguments {sorted(kwargs)}")
    if not isinstance(safe_mode, bool):
        raise TypeError(f"deserialize_keras_object(safe_mode): expected True or False, got {safe_mode!r}")
    if custom_objects is not None and (not isinstance(custom_objects, dict)
                                       or not all(isinstance(k, str) for k in custom_objects)):
        raise ValueError(f"deserialize_keras_object(custom_objects): expected a dict of name -> object, "
                         f"got {custom_objects!r}")

    def inner(value):
        return deserialize_keras_object(value, custom_objects, safe_mode, module_objects=module_objects)

    if config is None or isinstance(config, (bool, int, float)):
        return config
    if isinstance(config, str):  # a bare name: an object only where module_objects or a registry knows it
        found = _lookup(config, custom_objects, module_objects)
        return config if found is None else (found() if isinstance(found, type) else found)
    if isinstance(config, (list, tuple)):
        return [inner(x) for x in config]
    if not isinstance(config, dict):
        raise TypeError(f"deserialize_keras_object(config): expected a dict, list, str or number, "
                        f"got {type(config).__name__}")
    if "class_name" not in config:
        return {k: inner(v) for k, v in config.items()}
    class_name, inner_config = config["class_name"], config.get("config")
    if class_name == "__lambda__":
        raise ValueError("deserialize_keras_object: the config holds a lambda (code); mlp_gpu never runs code "
                         "from a config, whatever safe_mode says")
    if class_name == "__numpy__":
        return _numpy_value(inner_config)
    if class_name == "function":
        if not isinstance(inner_config, str):
            raise ValueError(f"deserialize_keras_object: a function's config is its name, got {inner_config!r}")
        found = _lookup(inner_config, custom_objects, module_objects) or _builtin_function(inner_config)
        if found is None:
            raise ValueError(f"deserialize_keras_object: unknown function {inner_config!r}; pass "
                             f"custom_objects={{{inner_config!r}: fn}} or decorate it with "
                             "@register_keras_serializable")
        return found
    if not isinstance(class_name, str):
        raise ValueError(f"deserialize_keras_object(config): bad class_name in {config!r:.200}")
    settings = {} if inner_config is None else inner_config
    found = _lookup(config.get("registered_name") or class_name, custom_objects, module_objects)
    if found is None:
        found = _lookup(class_name, custom_objects, module_objects)
    if found is not None:
        if not isinstance(found, type):
            return found
        if not isinstance(settings, dict):
            raise ValueError(f"deserialize_keras_object: the config of {class_name!r} must be a dict, got {settings!r}")
        return found.from_config(settings) if hasattr(found, "from_config") else found(**settings)
    cls = _builtin_class(config.get("module"), class_name)
    if cls is None:
        raise ValueError(f"deserialize_keras_object: could not locate class {class_name!r} (module "
                         f"{config.get('module')!r}); a custom class needs custom_objects={{{class_name!r}: cls}} or "
                         "@register_keras_serializable")
    make = next(make for base, _, make in _FAMILIES if issubclass(cls, base))
    try:
        return make(cls, settings)
    except TypeError as exc:
        raise ValueError(f"deserialize_keras_object: bad config for {class_name}: {exc}") from None
