"""``keras.optimizers.get / serialize / deserialize``: optimizers by name, config or Keras' serialized form."""
from __future__ import annotations

from .base import OPTIMIZERS, Optimizer, snake_case


def serialize(optimizer):
    """Keras' serialized form: {"module", "class_name", "config", "registered_name"}."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer: expected an Optimizer, got {optimizer!r}")
    cls = type(optimizer)
    builtin = OPTIMIZERS.get(cls.__name__.lower()) is cls
    return {"module": "keras.optimizers" if builtin else cls.__module__, "class_name": cls.__name__,
            "config": optimizer.get_config(), "registered_name": None if builtin else cls.__name__}


def deserialize(config, custom_objects=None):
    """The optimizer of a serialized form; a built-in's class_name is matched case-insensitively (as
    Keras), ``custom_objects`` maps other class names to a user's Optimizer subclasses."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"optimizer config: expected a dict with a class_name, got {config!r}")
    name = config["class_name"]
    cls = dict(custom_objects or {}).get(name) or OPTIMIZERS.get(name.lower())
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise ValueError(f"optimizer config: class_name {name!r} is not one of "
                         f"{sorted(c.__name__ for c in OPTIMIZERS.values())} (or of custom_objects)")
    try:
        return cls.from_config(dict(config.get("config") or {}), custom_objects=custom_objects)
    except TypeError as exc:
        raise ValueError(f"optimizer config for {name}: {exc}") from None


def get(identifier):
    """Keras' optimizers.get: None -> None; a name ("adam", "SGD") or a serialized dict -> a new
    optimizer; an Optimizer -> itself."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        if identifier.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, a serialized optimizer or an "
                             f"Optimizer, got {identifier!r}")
        obj = deserialize({"class_name": identifier, "config": {}})
    else:
        obj = identifier
    if isinstance(obj, Optimizer):
        return obj
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r} (expected one of "
                     f"{sorted(OPTIMIZERS)}, a serialized optimizer or an Optimizer)")


def from_config(config: dict) -> Optimizer:
    """An optimizer from ``serialize``'s form, or from a bare ``get_config()`` whose name is its class'
    default ("adam", "adam_w", "rm_sprop"; the form model files here carry); other names need ``serialize``."""
    if "class_name" in config:
        return deserialize(config)
    name = str(config.get("name"))
    by_name = {**OPTIMIZERS, **{snake_case(cls.__name__): cls for cls in OPTIMIZERS.values()}}
    if name not in by_name:
        raise ValueError(f"optimizer config: name {name!r} is no optimizer's default name "
                         f"({sorted(by_name)}); a named optimizer is restored from optimizers.serialize()'s form")
    return by_name[name].from_config(config)
