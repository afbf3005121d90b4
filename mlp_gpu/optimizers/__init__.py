"""``keras.optimizers``: one file per optimizer (its formula through the backend's update op, its Keras
name), registered in ``base.OPTIMIZERS`` as its class is defined; ``schedules`` holds the learning-rate
schedules; ``get``, ``serialize`` and ``deserialize`` are Keras'."""
from . import schedules
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .base import OPTIMIZERS, HyperValue, Optimizer
from .ftrl import Ftrl
from .lion import Lion
from .nadam import Nadam
from .rmsprop import RMSprop
from .serialization import deserialize, from_config, get, serialize
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Nadam", "RMSprop", "Adagrad", "Adamax", "Adadelta", "Ftrl",
           "Lion", "schedules", "get", "serialize", "deserialize", "from_config", "OPTIMIZERS", "HyperValue"]
