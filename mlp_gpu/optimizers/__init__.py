"""``keras.optimizers``: one file per optimizer (its formula through the backend's update op, its Keras
name), registered in ``base.OPTIMIZERS`` as its class is defined; ``schedules`` holds the learning-rate
schedules."""
from . import schedules
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .base import OPTIMIZERS, HyperValue, Optimizer, from_config, get
from .nadam import Nadam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Nadam", "RMSprop", "Adagrad", "schedules", "get", "from_config",
           "OPTIMIZERS", "HyperValue"]
