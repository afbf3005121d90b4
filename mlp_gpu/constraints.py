"""Weight constraints with Keras' names, formulas and configs (keras/src/constraints/constraints.py).

A constraint projects a weight after each optimizer update, as Keras does: ``layer.apply_constraints``
runs it on the layer's kernel and bias views. The built-in ones are written once in ``project(xp, w)``
against the backend's array module (NumPy or CuPy) and write the result into the weight in place; a
user's subclass that overrides only ``__call__(w)`` (Keras' way) gets a host copy and returns an array.
"""
from __future__ import annotations

import inspect

import numpy as np

from ._checks import check_number
from .utils import get_custom_object

EPSILON = 1e-7  # Keras' backend.epsilon(), added to the norms it divides by


def _check_axis(axis, arg):
    """Keras' axis: an int or a list/tuple of ints."""
    if isinstance(axis, (list, tuple)) and axis and all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                                                        for a in axis):
        return type(axis)(int(a) for a in axis)
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return int(axis)
    raise TypeError(f"{arg}: expected an int or a list of ints, got {axis!r}")


def _norms(xp, w, axis):
    axis = tuple(axis) if isinstance(axis, list) else axis
    return xp.sqrt(xp.sum(xp.square(w), axis=axis, keepdims=True))


class Constraint:
    """Base class: the identity. Subclasses override ``project(xp, w)`` (in-place friendly, on the backend's
    arrays) or, as in Keras, ``__call__(w)`` (host arrays in, an array out)."""

    def __call__(self, w):
        return self.project(np, np.asarray(w))

    def project(self, xp, w):
        """The projected weight as a new array of w's module ``xp``."""
        return w

    @property
    def on_host(self) -> bool:
        """Whether this constraint is a user's ``__call__`` (run on a host copy) rather than ``project``."""
        return type(self).__call__ is not Constraint.__call__

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MaxNorm(Constraint):
    """``w * clip(norms, 0, max_value) / (epsilon + norms)``, norms along ``axis`` (0: each unit's incoming
    weights of a Dense kernel)."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = check_number(max_value, "MaxNorm(max_value)", 0)
        self.axis = _check_axis(axis, "MaxNorm(axis)")

    def project(self, xp, w):
        norms = _norms(xp, w, self.axis)
        return w * (xp.clip(norms, 0, self.max_value) / (EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """``maximum(w, 0)``."""

    def project(self, xp, w):
        return xp.maximum(w, 0)


class UnitNorm(Constraint):
    """``w / (epsilon + norms)``, norms along ``axis``."""

    def __init__(self, axis=0):
        self.axis = _check_axis(axis, "UnitNorm(axis)")

    def project(self, xp, w):
        return w / (EPSILON + _norms(xp, w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """``w * (rate * clip(norms, min_value, max_value) + (1 - rate) * norms) / (epsilon + norms)``."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = check_number(min_value, "MinMaxNorm(min_value)", 0)
        self.max_value = check_number(max_value, "MinMaxNorm(max_value)", self.min_value)
        self.rate = check_number(rate, "MinMaxNorm(rate)")
        self.axis = _check_axis(axis, "MinMaxNorm(axis)")

    def project(self, xp, w):
        norms = _norms(xp, w, self.axis)
        desired = self.rate * xp.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm  # Keras' aliases
CLASSES = (Constraint, MaxNorm, NonNeg, UnitNorm, MinMaxNorm)
# Keras' names: the class names and their snake-case forms
CONSTRAINTS = {**{cls.__name__: cls for cls in CLASSES},
               "constraint": Constraint, "max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
               "min_max_norm": MinMaxNorm}


def serialize(constraint):
    """Keras' form: None, or ``{"module", "class_name", "config", "registered_name"}``."""
    if constraint is None:
        return None
    if not isinstance(constraint, Constraint):
        raise TypeError(f"constraint: expected a Constraint to serialize, got {constraint!r}")
    name = type(constraint).__name__
    builtin = CONSTRAINTS.get(name) is type(constraint)
    return {"module": "keras.constraints" if builtin else None, "class_name": name,
            "config": constraint.get_config(), "registered_name": None if builtin else name}


def deserialize(config, custom_objects=None):
    """A constraint from ``serialize``'s dict (or a name); ``custom_objects`` or load_model's scope gives
    a user's classes."""
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"constraint config: expected a dict with 'class_name' and 'config', got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or CONSTRAINTS.get(name) or get_custom_object(name)
    if not (inspect.isclass(cls) and issubclass(cls, Constraint)):
        raise ValueError(f"constraint config: unknown class_name {name!r}; expected one of {sorted(CONSTRAINTS)} "
                         "or a Constraint subclass in custom_objects")
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ValueError(f"constraint config for {name}: 'config' must be a dict, got {inner!r}")
    try:
        return cls.from_config(dict(inner))
    except TypeError as exc:
        raise ValueError(f"constraint config for {name}: {exc}") from None


def get(identifier):
    """None, a Constraint (or its class), a Keras name ("max_norm", "MaxNorm") or a serialized dict."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = CONSTRAINTS.get(identifier) or get_custom_object(identifier)
        if cls is None:
            raise ValueError(f"constraint: expected one of {sorted(CONSTRAINTS)}, got {identifier!r}")
        identifier = cls
    if inspect.isclass(identifier) and issubclass(identifier, Constraint):
        return identifier()
    raise ValueError(f"constraint: expected None, a Constraint, a name or a config dict, got {identifier!r}")
