"""Lambda: a layer from a Python function written with ``mlp_gpu.ops``, traced once when the model is built.

The function maps a (rows, features) batch to (rows, features) (element-wise) or (rows, 1) (a
per-row reduction with ``keepdims=True``). Its forward pass and the backward pass that reverse-mode
differentiation gives are each one generated kernel on the GPU (``Backend.run_traced``), in-place
NumPy on the CPU. As in Keras, a file stores the function's name, never its code: ``load_model``
needs it in ``custom_objects``.
"""
from __future__ import annotations

from ..tracing import describe, function_name, trace_map
from ..utils import get_custom_object
from .base import Layer, flat_features


def resolve_function(name, what: str):
    """The function a config names, from load_model's custom_objects, or an error naming what is missing."""
    if callable(name):
        return name
    fn = get_custom_object(name) if isinstance(name, str) else None
    if fn is None:
        hint = name if str(name).isidentifier() else "fn"
        raise ValueError(f"{what}: the file names the function {name!r}, whose code a model file never stores; "
                         f"pass load_model(path, custom_objects={{{name!r}: {hint}}})")
    return fn


class Lambda(Layer):
    """``Lambda(function, output_shape=None, mask=None, arguments=None)``, Keras' arguments; ``function(x,
    **arguments)`` is traced at build (an untraceable one is refused then, naming its line and op)."""

    config_keys = frozenset({"name", "function", "arguments", "input_shape"})

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        self.function = resolve_function(function, "Lambda(function)")
        if mask is not None:
            raise ValueError("Lambda(mask): masks are not supported")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"Lambda(arguments): expected a dict of keyword arguments, got {arguments!r}")
        self.arguments = dict(arguments or {})
        self.declared_output_shape = None if output_shape is None else tuple(output_shape)
        self._forward = self._backward = None

    def output_shape(self, input_shape):
        cols = flat_features(self, input_shape)
        fn = self.function
        self._forward, self._backward, self.units = trace_map(lambda x: fn(x, **self.arguments), cols,
                                                              f"Lambda {self.name!r} function {describe(fn)}")
        if self.declared_output_shape not in (None, (self.units,)):
            raise ValueError(f"Lambda {self.name!r}: output_shape={self.declared_output_shape} but the function "
                             f"gives {(self.units,)}")
        return (self.units,)

    def forward(self, backend, x, out, training=False, aux=None):
        backend.run_traced(self._forward, {"x": x, "y": out})

    def backward(self, backend, x, y, dy, dx, aux=None):
        if dx is not None:  # no weights: only the input's gradient
            backend.run_traced(self._backward, {"x": x, "dy": dy, "dx": dx})

    def get_config(self):
        cfg = {**super().get_config(), "function": function_name(self.function)}
        if self.arguments:
            cfg["arguments"] = self.arguments
        return cfg
