"""Importing an optional dependency of a backend (CuPy, Numba): the module, or a sentence saying why not."""
from __future__ import annotations

import importlib


def optional_import(name: str, what: str, hint: str = ""):
    """(the module ``name``, None), or (None, why ``what`` is not importable, then ``hint``). An optional import
    may raise anything, not only ImportError: a broken CUDA install, a Numba that refuses this NumPy."""
    try:
        return importlib.import_module(name), None
    except Exception as exc:
        return None, f"{what} is not importable ({type(exc).__name__}: {exc}){hint}"
