"""mlp_gpu: Keras-like multilayer perceptrons on CUDA (CuPy) or NumPy."""
__version__ = "0.1.0"

import sys

from . import callbacks, data, datasets, distributed, initializers, layers, losses, models, optimizers  # noqa: E402,F401
from . import constraints, ops, regularizers, saving, utils  # noqa: E402,F401
from .backend import available_backends, get_backend  # noqa: E402
from .callbacks import Callback, EarlyStopping, History  # noqa: E402
from .layers import BatchNormalization, Dense, Dropout, Flatten, Input, Lambda, Normalization  # noqa: E402
from .models import Model, Sequential, load_model  # noqa: E402
from .optimizers import SGD, Adam, schedules  # noqa: E402
from .training.fit import TrainingDiverged  # noqa: E402

# Import paths that earlier releases and the docs use, kept as names of the modules' new homes.
data_sources = data.sources
sys.modules[__name__ + ".data_sources"] = data.sources
sys.modules[__name__ + ".schedules"] = schedules

__all__ = ["Sequential", "Model", "Dense", "Flatten", "Input", "Dropout", "Lambda", "BatchNormalization",
           "Normalization",
           "regularizers", "constraints", "SGD", "Adam", "EarlyStopping", "Callback", "History",
           "load_model", "get_backend", "available_backends", "data", "distributed", "losses", "optimizers",
           "callbacks", "initializers", "datasets", "models", "saving", "utils", "TrainingDiverged", "__version__"]
