"""mlp_gpu: Keras-like multilayer perceptrons on CUDA (CuPy) or NumPy."""
__version__ = "0.1.0"

from . import callbacks, data, datasets, distributed, initializers, losses, optimizers, regularizers, utils  # noqa: E402
from .backend import available_backends, get_backend  # noqa: E402
from .callbacks import Callback, EarlyStopping, History  # noqa: E402
from .io import load_model  # noqa: E402
from .layers import Dense, Flatten, Input, Dropout, BatchNormalization, Normalization  # noqa: E402
from .model import Sequential  # noqa: E402
from . import models  # noqa: E402
from .optimizers import SGD, Adam  # noqa: E402
from .trainer import TrainingDiverged  # noqa: E402

__all__ = ["Sequential", "Dense", "Flatten", "Input", "Dropout", "BatchNormalization", "Normalization",
           "regularizers", "SGD", "Adam", "EarlyStopping", "Callback", "History",
           "load_model", "get_backend", "available_backends", "data", "distributed", "losses", "optimizers",
           "callbacks", "initializers", "datasets", "models", "utils", "TrainingDiverged", "__version__"]
