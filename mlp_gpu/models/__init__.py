"""``keras.models``: ``Sequential``, ``Model``, ``load_model`` and ``clone_model``."""
from .cloning import clone_model
from .functional import Model
from .saving import load_model
from .sequential import Sequential

__all__ = ["Sequential", "Model", "load_model", "clone_model"]
