"""Weight regularizers with Keras' names and formulas: ``penalty = l1 * sum|w| + l2 * sum(w^2)``.

The penalty joins the reported loss and its gradient ``l1 * sign(w) + 2 * l2 * w`` joins the
update, as in Keras; both are one ``backend.regularize`` launch per regularized tensor.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_number


def _factor(value, arg):
    return check_number(value, arg, 0)


class Regularizer:
    """Base class; subclasses set ``l1`` and ``l2``."""

    l1 = 0.0
    l2 = 0.0

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


def get(identifier) -> Regularizer | None:
    """None, a Regularizer, a name ("l1", "l2", "l1_l2") or a {"class_name", "config"} dict."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in _STRINGS:
        return _STRINGS[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in ("L1", "L2", "L1L2"):
        cls = {"L1": L1, "L2": L2, "L1L2": L1L2}[identifier["class_name"]]
        try:
            return cls(**dict(identifier.get("config") or {}))
        except TypeError as exc:
            raise ValueError(f"regularizer config: {exc}") from None
    raise ValueError(f"regularizer: expected None, 'l1', 'l2', 'l1_l2' or a Regularizer, got {identifier!r}")


def serialize(regularizer: Regularizer | None):
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
