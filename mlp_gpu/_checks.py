"""Argument checks shared by every module, so that each bad value gets the same kind of message:
``"<arg>: expected <what>, got <value>"``. A bool is not accepted as a number (``True`` is an int in
Python, never what the caller meant).
"""
from __future__ import annotations

import math

import numpy as np


def check_int(value, arg: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int within [minimum, maximum] (either bound optional), or raise ValueError."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return int(value)
    if minimum is not None and maximum is not None:
        what = f"an int in [{minimum}, {maximum}]"
    elif minimum is not None:
        what = f"an int >= {minimum}"
    elif maximum is not None:
        what = f"an int <= {maximum}"
    else:
        what = "an int"
    raise ValueError(f"{arg}: expected {what}, got {value!r}")


def check_number(value, arg: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a finite float within the interval from low to high, or raise ValueError.

    Bounds are closed unless ``low_open``/``high_open``; ``check_number(v, "lr", 0, low_open=True)``
    asks for a positive number, ``check_number(v, "split", 0, 1, high_open=True)`` for one in [0, 1).
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return float(value)
    if low == 0 and low_open and high is None:
        what = "a positive finite number"
    elif low is None and high is None:
        what = "a finite number"
    else:
        what = (f"a number in {'(' if low_open else '['}{'-inf' if low is None else f'{low:g}'}, "
                f"{'inf' if high is None else f'{high:g}'}{')' if high_open or high is None else ']'}")
    raise ValueError(f"{arg}: expected {what}, got {value!r}")


def check_bool(value, arg: str) -> bool:
    """Return ``value`` as a bool (True/False or a NumPy bool), or raise ValueError: ``"no"`` is not False."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{arg}: expected True or False, got {value!r}")
