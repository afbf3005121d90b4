"""``keras.models``: ``mlp_gpu.models.Sequential`` and ``mlp_gpu.models.load_model``."""
from .io import load_model
from .model import Sequential

__all__ = ["Sequential", "load_model"]
