"""Symbolic tensors and the nodes that record a layer call: the edges of a functional model.

``Input(shape)`` is the source of a graph; calling a layer on symbolic tensors (``Dense(4)(x)``)
records a Node (the layer, its input tensors) and returns the node's output tensor. No arithmetic
happens: shapes are fixed here, and a Model turns the recorded nodes into its passes.
"""
from __future__ import annotations

import linecache
import sys


class SymbolicError(TypeError):
    """A symbolic tensor was used where a value is needed (Python control flow, arithmetic)."""


def _caller_line() -> str:
    """'file:line: source' of the first frame outside this package's layers, for errors in a traced call()."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(__file__.rsplit("/", 1)[0]):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    source = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return f"{frame.f_code.co_filename}:{frame.f_lineno}: {source}"


class KerasTensor:
    """The symbolic output of a layer call: ``shape`` (None, *sample), ``dtype``, ``name``; it holds
    no values. Branching on it (``if x > 0``) or doing arithmetic with it is data-dependent and is
    refused with the line that did it; use merge layers (``Add``, ``Multiply`` ...) instead."""

    dtype = "float32"

    def __init__(self, sample_shape: tuple, node: "Node", name: str | None = None):
        self.sample_shape = tuple(sample_shape)
        self.node = node
        self._name = name

    @property
    def shape(self) -> tuple:
        return (None,) + self.sample_shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str:
        return self._name or self.node.layer.name or type(self.node.layer).__name__.lower()

    @property
    def _keras_history(self) -> tuple:
        return (self.node.layer, self.node.index, 0)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def _refuse(self, what):
        raise SymbolicError(f"{what} of a symbolic tensor ({self!r}) at {_caller_line()}: a model's graph is "
                            "recorded once on symbolic inputs, so Python control flow or arithmetic that depends "
                            "on the data cannot be traced; use layers (Add, Subtract, Multiply, Maximum, ...) "
                            "and keep if/for/while on Python values")

    def __bool__(self):
        self._refuse("the truth value")

    def __len__(self):
        self._refuse("len()")

    def __iter__(self):
        self._refuse("iteration")

    def __float__(self):
        self._refuse("float()")

    def __int__(self):
        self._refuse("int()")

    def __index__(self):
        self._refuse("an index")

    def __array__(self, *args, **kwargs):
        self._refuse("a NumPy conversion")


def _binary(op):
    def method(self, other):
        self._refuse(f"'{op}'")
    return method


for _name, _op in (("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/"), ("matmul", "@"), ("pow", "**"),
                   ("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">="), ("radd", "+"), ("rsub", "-"),
                   ("rmul", "*"), ("rtruediv", "/")):
    setattr(KerasTensor, f"__{_name}__", _binary(_op))
KerasTensor.__hash__ = object.__hash__  # identity: tensors are graph edges, __eq__ stays identity too


class Node:
    """One call of a layer: its input tensors (in call order), its output tensor, ``training`` as passed."""

    def __init__(self, layer, inputs: list, sample_shape: tuple, training=None, takes_list=False):
        self.layer, self.inputs, self.training, self.takes_list = layer, list(inputs), training, takes_list
        nodes = layer.__dict__.setdefault("_inbound_nodes", [])
        nodes.append(self)
        self.index = len(nodes) - 1
        self.output = KerasTensor(sample_shape, self)

    def __repr__(self):
        return f"<Node {self.layer.name or type(self.layer).__name__}[{self.index}]>"


def symbolic(value):
    """The KerasTensor behind ``value`` (a KerasTensor or an Input layer), else None."""
    if isinstance(value, KerasTensor):
        return value
    output = getattr(value, "output", None)
    return output if isinstance(output, KerasTensor) else None
