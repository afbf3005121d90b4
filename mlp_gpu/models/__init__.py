"""``keras.models``: ``Sequential``, ``load_model`` and ``clone_model``."""
from ..io import load_model
from .cloning import clone_model
from .sequential import Sequential

__all__ = ["Sequential", "load_model", "clone_model"]
