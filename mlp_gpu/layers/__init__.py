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
from .layer_normalization import LayerNormalization, UnitNormalization
from .noise import AlphaDropout, GaussianDropout, GaussianNoise
from .reshaping import Identity, Rescaling, Reshape

__all__ = ["Layer", "Input", "InputLayer", "Flatten", "Dense", "Dropout", "Lambda", "BatchNormalization",
           "Normalization", "Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract", "add",
           "average", "concatenate", "maximum", "minimum", "multiply", "subtract", "KerasTensor",
           "LayerNormalization", "UnitNormalization", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Reshape",
           "Rescaling", "Identity",
           "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"]
