"""Model and weight files (HDF5, float32): our own layout (hdf5.py) and Keras' (keras.py), both written
through files.py (safe writes, the seal, the file errors)."""
from .files import ModelFileError, SaveError
from .hdf5 import load_model, load_weights, save_model, save_weights
from .keras import export_keras_weights

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "export_keras_weights", "ModelFileError",
           "SaveError"]
