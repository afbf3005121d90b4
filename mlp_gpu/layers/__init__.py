"""``keras.layers``: every layer class, one file per family; ``base`` holds the protocol and registry."""
from .base import (LAYER_CLASSES, Layer, Variable, check_activation, check_weights, flat_features,  # noqa: F401
                   layer_from_config, write_weights)
from .activation import ELU, Activation, LeakyReLU, PReLU, ReLU, Softmax  # noqa: F401
from .core import Dense, Flatten, Input, InputLayer
from .dropout import Dropout
from .lambda_layer import Lambda
from .merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average,
                      concatenate, maximum, minimum, multiply, subtract)
from .node import KerasTensor
from .normalization import BatchNormalization, Normalization

__all__ = ["Layer", "Input", "InputLayer", "Flatten", "Dense", "Dropout", "Lambda", "BatchNormalization",
           "Normalization", "Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract", "add",
           "average", "concatenate", "maximum", "minimum", "multiply", "subtract", "KerasTensor"]
__all__ += ["Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"]  # layers/activation.py
