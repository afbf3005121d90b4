"""Weight regularizers with Keras' names and formulas: ``penalty = l1 * sum|w| + l2 * sum(w^2)``.

The penalty joins the reported loss and its gradient ``l1 * sign(w) + 2 * l2 * w`` joins the
update, as in Keras; both are one ``backend.regularize`` launch per regularized tensor.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_number
from .utils import get_custom_object, get_registered_name


def _factor(value, arg):
    return check_number(value, arg, 0)


class Regularizer:
    """Base class; subclasses set ``l1`` and ``l2``. The penalty runs as one fused ``l1``/``l2`` launch on
    the device, so a subclass that computes another penalty in ``__call__`` is refused by ``get`` (Keras
    takes any callable; mlp_gpu would silently train without it)."""

    l1 = 0.0
    l2 = 0.0

    @classmethod
    def from_config(cls, config):
        """Keras' ``from_config``: ``cls(**config)``."""
        return cls(**config)

    def __call__(self, x) -> float:
        x = np.asarray(x, np.float64)
        return self.l1 * float(np.abs(x).sum()) + self.l2 * float((x * x).sum())

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1L2(Regularizer):
    """``l1 * sum(abs(x)) + l2 * sum(square(x))``; Keras' defaults l1=0.0, l2=0.0."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "L1L2(l1)")
        self.l2 = _factor(0.0 if l2 is None else l2, "L1L2(l2)")


class L1(Regularizer):
    """``l1 * sum(abs(x))``, Keras' default l1=0.01."""

    def __init__(self, l1=0.01):
        self.l1 = _factor(0.01 if l1 is None else l1, "L1(l1)")

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(square(x))``, Keras' default l2=0.01."""

    def __init__(self, l2=0.01):
        self.l2 = _factor(0.01 if l2 is None else l2, "L2(l2)")

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2  # Keras' lower-case aliases (l1_l2 keeps L1L2's 0.0 defaults)
# Strings as Keras reads them, plus "l1_l2" with the 0.01 factors Keras' docstring promises.
_STRINGS = {"l1": L1, "L1": L1, "l2": L2, "L2": L2, "l1l2": L1L2, "L1L2": L1L2,
            "l1_l2": lambda: L1L2(0.01, 0.01)}


_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}


def _checked(regularizer):
    """A user's Regularizer subclass is fine if it keeps Regularizer's l1/l2 penalty; one with its own
    ``__call__`` would be ignored by the fused penalty: refused."""
    if type(regularizer).__call__ is not Regularizer.__call__:
        raise ValueError(f"regularizer: {type(regularizer).__name__} computes its own penalty in __call__; mlp_gpu "
                         "applies l1 * sum|w| + l2 * sum(w^2) alone (one fused launch): set l1 and l2 instead")
    return regularizer


def get(identifier) -> Regularizer | None:
    """None, a Regularizer, a name ("l1", "l2", "l1_l2") or a {"class_name", "config"} dict."""
    if identifier is None:
        return None
    if isinstance(identifier, Regularizer):
        return _checked(identifier)
    if isinstance(identifier, str) and identifier in _STRINGS:
        return _STRINGS[identifier]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"regularizer: expected None, 'l1', 'l2', 'l1_l2' or a Regularizer, got {identifier!r}")


def serialize(regularizer: Regularizer | None):
    """Keras' serialized form: ``{"module", "class_name", "config", "registered_name"}`` (None stays None)."""
    if regularizer is None:
        return None
    if not isinstance(regularizer, Regularizer):
        raise TypeError(f"regularizers.serialize(regularizer): expected a Regularizer or None, got "
                        f"{type(regularizer).__name__}")
    cls = type(regularizer)
    ours = cls in _CLASSES.values()
    return {"module": "keras.regularizers" if ours else cls.__module__, "class_name": cls.__name__,
            "config": regularizer.get_config(), "registered_name": None if ours else get_registered_name(cls)}


def deserialize(config, custom_objects=None):
    """Keras' ``deserialize``: a Regularizer from its serialized dict or a name ("L2", "l2", "l1l2"); a user's
    class is found in ``custom_objects``, a custom_object_scope or register_keras_serializable's registry."""
    if custom_objects is not None and (not isinstance(custom_objects, dict)
                                       or not all(isinstance(k, str) for k in custom_objects)):
        raise ValueError(f"regularizers.deserialize(custom_objects): expected a dict of name -> class, "
                         f"got {custom_objects!r}")
    if isinstance(config, str):
        found = _CLASSES.get(config) or {"l1": L1, "l2": L2, "l1l2": L1L2}.get(config)  # as Keras: no "l1_l2"
        if found is None:
            raise ValueError(f"regularizers.deserialize(config): unknown regularizer {config!r}; expected one of "
                             "L1, L2, L1L2, l1, l2, l1l2 or a serialized dict")
        return found()
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) \
            or not isinstance(config.get("config", {}), dict):
        raise ValueError(f"regularizers.deserialize(config): expected a name or a dict with 'class_name' and "
                         f"'config', got {config!r:.200}")
    name = config.get("registered_name") or config["class_name"]
    cls = (custom_objects or {}).get(name) or get_custom_object(name) or _CLASSES.get(config["class_name"])
    if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
        raise ValueError(f"regularizers.deserialize(config): {name!r} is not a regularizer mlp_gpu knows; a custom "
                         "one needs custom_objects={name: class} or @register_keras_serializable")
    try:
        return _checked(cls.from_config(dict(config.get("config") or {})))
    except TypeError as exc:
        raise ValueError(f"regularizer config: {exc}") from None
