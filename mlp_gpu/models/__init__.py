"""``keras.models``: ``Sequential``, ``Model``, ``load_model``, ``save_model``, ``model_from_json`` and
``clone_model``."""
from .cloning import clone_model
from .functional import Model
from .saving import load_model, model_from_json, save_model
from .sequential import Sequential

__all__ = ["Sequential", "Model", "load_model", "save_model", "model_from_json", "clone_model"]
