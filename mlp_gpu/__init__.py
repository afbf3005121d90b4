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
# Keras 3's top-level base classes (keras.Layer, keras.Loss, ...), at the same names here
from .initializers import Initializer  # noqa: E402
from .layers import Layer, Variable  # noqa: E402
from .losses import Loss  # noqa: E402
from .metrics import Metric  # noqa: E402
from .optimizers import Optimizer  # noqa: E402
from .regularizers import Regularizer  # noqa: E402


def __getattr__(name):
    """``mlp_gpu.wrappers`` (keras.wrappers) on first use: it needs scikit-learn, an optional dependency."""
    if name == "wrappers":
        import importlib
        return importlib.import_module(".wrappers", __name__)
    raise AttributeError(f"module 'mlp_gpu' has no attribute {name!r}")


def version() -> str:
    """``keras.version()``: this package's version."""
    return __version__

# Import paths that earlier releases and the docs use, kept as names of the modules' new homes.
data_sources = data.sources
sys.modules[__name__ + ".data_sources"] = data.sources
sys.modules[__name__ + ".schedules"] = schedules

__all__ = ["Sequential", "Model", "Dense", "Flatten", "Input", "Dropout", "Lambda", "BatchNormalization",
           "Normalization",
           "regularizers", "constraints", "SGD", "Adam", "EarlyStopping", "Callback", "History",
           "load_model", "get_backend", "available_backends", "data", "distributed", "losses", "optimizers",
           "callbacks", "initializers", "datasets", "models", "saving", "utils", "TrainingDiverged", "__version__",
           "Layer", "Variable", "Loss", "Metric", "Optimizer", "Initializer", "Regularizer", "version"]
