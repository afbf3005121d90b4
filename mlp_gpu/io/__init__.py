"""Model and weight files (HDF5, float32): our own layout (hdf5.py) and Keras' (keras.py, keras_zip.py),
written through files.py (safe writes, the seal, the file errors) and read through the guarded readers
(safe_h5.py, bounded.py). Making a model from a file's config is models/saving.py's."""
from .files import ModelFileError, SaveError
from .hdf5 import load_weights, save_model, save_weights
from .keras import export_keras_weights

__all__ = ["save_model", "save_weights", "load_weights", "export_keras_weights", "ModelFileError", "SaveError"]
