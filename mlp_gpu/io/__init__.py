"""Model and weight files (HDF5, float32). See hdf5.py for the layout."""
from .hdf5 import load_model, load_weights, save_model, save_weights

__all__ = ["save_model", "load_model", "save_weights", "load_weights"]
