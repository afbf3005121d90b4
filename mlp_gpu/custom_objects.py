"""A user's losses, metrics and functions in model files, as Keras keeps them: by name, never as code.

``serialize`` writes Keras' form (a function: ``{"module": "builtins", "class_name": "function",
"config": name}``; an object of a user's class: its class name and ``get_config()``). ``deserialize``
finds the name in ``load_model(..., custom_objects=...)`` and rebuilds the object with
``from_config`` (or ``cls(**config)``), or says which name is missing.
"""
from __future__ import annotations

from .tracing import function_name
from .utils import _registered_names, get_custom_object, get_registered_name


def is_custom(config) -> bool:
    """Whether a serialized loss or metric is a user's (Keras' own carry module keras.*)."""
    return isinstance(config, dict) and config.get("module") in (None, "builtins") and "class_name" in config


def _registered(obj) -> bool:
    try:
        return obj in _registered_names
    except TypeError:  # unhashable
        return False


def serialize_function(fn) -> dict:
    """A function by name: the one register_keras_serializable gave it ("Custom>fn"), else its own."""
    name = get_registered_name(fn) if _registered(fn) else function_name(fn)
    return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}


def serialize(obj) -> dict:
    """Keras' serialized form of a user's loss or metric; a wrapper of a function is the function."""
    fn = getattr(obj, "fn", None)
    if fn is not None:
        return serialize_function(fn)
    cls = type(obj)
    return {"module": None, "class_name": cls.__name__, "config": obj.get_config(),
            "registered_name": get_registered_name(cls)}


def deserialize(config: dict, what: str):
    """The function, or a new object, a serialized config names; found in custom_objects."""
    is_function = config.get("class_name") == "function"
    name = config.get("config") if is_function else config.get("registered_name") or config.get("class_name")
    found = get_custom_object(name) if isinstance(name, str) else None
    if found is None:
        kind = "function" if is_function else "class"
        raise ValueError(f"{what}: the model file names the custom {kind} {name!r}, which mlp_gpu does not define "
                         f"and a file never holds as code; pass load_model(path, custom_objects={{{name!r}: ...}})")
    if is_function:
        return found
    settings = config.get("config") or {}
    if not isinstance(found, type) or not isinstance(settings, dict):
        raise ValueError(f"{what}: custom_objects[{name!r}] must be a class whose get_config() the file holds")
    return found.from_config(settings) if hasattr(found, "from_config") else found(**settings)
