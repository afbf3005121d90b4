"""``keras.activations``: the activation table, the one place an activation is defined.

Each entry holds everything every part of the library needs of it:

- ``forward(z)``: NumPy, ``z <- f(z)`` in place (``z`` may be a strided view); the CPU backend and the
  test oracle;
- ``derivative(dy, y)``: NumPy, ``dy <- dy * f'(.)`` in place, written through the output ``y`` (layers
  keep their outputs, not their inputs);
- ``cuda_forward`` / ``cuda_derivative``: the same as C expressions of ``float x`` and of ``float y``,
  from which ``kernels/activations.cuh`` is generated (:func:`cuda_header`): the kernels' activation switch
  is never written by hand, and nvcc, NVRTC and the host harness all compile that file;
- ``onnx``: the ONNX operator and its attributes, for the exporter.

Its position in the table is its code: the kernels see ``ACT_<NAME>`` (backend/shared_constants.py).
``softmax`` is a row operation with kernels of its own, so it has no element-wise expressions.
Adding an activation is one ``Activation(...)`` line below and ``make headers``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

@dataclass(frozen=True)
class Activation:
    name: str
    forward: Callable[[np.ndarray], None]
    derivative: Callable[[np.ndarray, np.ndarray], None]
    cuda_forward: str | None
    cuda_derivative: str | None
    onnx: tuple[str, dict] | None = None
    row_wise: bool = field(default=False)  # softmax: over each row, its own kernels

    def __call__(self, x):
        """``keras.activations.relu(x)``: f(x) as a new float32 array (x is not changed)."""
        y = np.array(x, dtype=np.float32)
        self.forward(y if y.ndim == 2 or not self.row_wise else y.reshape(-1, y.shape[-1]))
        return y

    def __repr__(self):
        return f"<activation {self.name}>"


def stable_sigmoid(z, out, xp=np):
    """out <- 1 / (1 + exp(-z)), z clipped to +-88 so exp never overflows (as the kernels' sigmoidf_stable)."""
    xp.negative(z, out=out)
    xp.clip(out, -88.0, 88.0, out=out)
    xp.exp(out, out=out)
    out += 1
    xp.reciprocal(out, out=out)
    return out


def _softmax(z):
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)


def _softmax_derivative(dy, y):
    s = (dy * y).sum(axis=1, keepdims=True)
    dy -= s
    dy *= y


LEAKY_SLOPE = 0.2  # keras.activations.leaky_relu's negative_slope

TABLE = (
    Activation("linear", lambda z: None, lambda dy, y: None, "x", "1.0f"),
    Activation("relu", lambda z: np.maximum(z, 0, out=z), lambda dy, y: np.multiply(dy, y > 0, out=dy),
               "fmaxf(x, 0.0f)", "(y > 0.0f ? 1.0f : 0.0f)", ("Relu", {})),
    Activation("sigmoid", lambda z: stable_sigmoid(z, out=z), lambda dy, y: np.multiply(dy, y * (1 - y), out=dy),
               "sigmoidf_stable(x)", "y * (1.0f - y)", ("Sigmoid", {})),
    Activation("tanh", lambda z: np.tanh(z, out=z), lambda dy, y: np.multiply(dy, 1 - y * y, out=dy),
               "tanhf(x)", "1.0f - y * y", ("Tanh", {})),
    Activation("softmax", _softmax, _softmax_derivative, None, None, ("Softmax", {"axis": -1}), row_wise=True),
    Activation("leaky_relu", lambda z: np.maximum(z, np.float32(LEAKY_SLOPE) * z, out=z),
               lambda dy, y: np.multiply(dy, np.where(y > 0, 1, LEAKY_SLOPE), out=dy),
               f"fmaxf(x, {LEAKY_SLOPE}f * x)", f"(y > 0.0f ? 1.0f : {LEAKY_SLOPE}f)",
               ("LeakyRelu", {"alpha": LEAKY_SLOPE})),
)

ACTIVATIONS = {a.name: a for a in TABLE}


def get(identifier) -> Activation:
    """``keras.activations.get``: an entry of the table by name (None means linear)."""
    if identifier is None:
        return ACTIVATIONS["linear"]
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str) and identifier in ACTIVATIONS:
        return ACTIVATIONS[identifier]
    raise ValueError(f"activation: expected one of {list(ACTIVATIONS)} or None, got {identifier!r}")


def serialize(activation) -> str:
    return get(activation).name


deserialize = get


def cuda_header() -> str:
    """``kernels/activations.cuh``: the element-wise activations as two device functions over the codes.
    A test keeps the file equal to this text; ``make headers`` writes it."""
    lines = ["// Generated from mlp_gpu/activations.py by cuda_header(); do not edit.",
             "// activate(x, act): the activation of x; activation_derivative(y, act): its derivative, written",
             "// through the output y = activate(x, act). Codes ACT_* come from shared_constants.",
             "#pragma once", "",
             "__device__ __forceinline__ float activate(float x, int act) {", "    switch (act) {"]
    elementwise = [a for a in TABLE if not a.row_wise and a.name != "linear"]
    lines += [f"        case ACT_{a.name.upper()}: return {a.cuda_forward};" for a in elementwise]
    lines += ["        default: return x;", "    }", "}", "",
              "__device__ __forceinline__ float activation_derivative(float y, int act) {", "    switch (act) {"]
    lines += [f"        case ACT_{a.name.upper()}: return {a.cuda_derivative};" for a in elementwise]
    lines += ["        default: return 1.0f;", "    }", "}"]
    return "\n".join(lines) + "\n"


globals().update({a.name: a for a in TABLE})  # keras.activations.relu(x) and friends
__all__ = ["Activation", "ACTIVATIONS", "get", "serialize", "deserialize", *ACTIVATIONS]
