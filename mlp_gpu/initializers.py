"""Weight initializers with Keras' names, classes and formulas (keras/src/initializers/).

Drawn on the host from a NumPy Generator, so a seed gives the same initial weights on every
backend (what the CPU/GPU parity tests compare). An initializer is called as
``init(shape, rng)`` by the layers; Keras' ``init(shape, dtype=None)`` works too.

As in Keras, ``glorot_normal``, ``he_normal`` and ``lecun_normal`` draw a normal truncated at two
standard deviations with stddev = sqrt(scale / n) / 0.87962566103423978: the truncation narrows
the spread by that factor, so the weights end up with the formula's spread sqrt(scale / n).
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import check_int, check_number
from .naming import snake_case
from .utils import get_custom_object

TRUNCATION_SPREAD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def _check_axes(axes, arg):
    """Keras' input_axes/output_axes: None or a list of int axes."""
    if axes is None:
        return None
    if isinstance(axes, (str, bytes)) or not hasattr(axes, "__iter__") or \
            any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
        raise TypeError(f"{arg}: expected None or a list of int axes, got {axes!r}")
    return [int(a) for a in axes]


def compute_fans(shape, input_axes=None, output_axes=None):
    """(fan_in, fan_out) as Keras computes them: the product of the given axes when both are given,
    else (rows, cols) of a kernel, (n, n) for a vector."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        try:
            return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
        except IndexError:
            raise ValueError(f"input_axes={input_axes}, output_axes={output_axes}: an axis is out of range for "
                             f"a weight of shape {shape}") from None
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(rng, mean, std, shape):
    out = rng.normal(0.0, std, size=shape)
    bad = np.abs(out) > 2 * std
    while bad.any():  # redraw outside two standard deviations, as Keras does
        out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out + mean


class Initializer:
    """Base class: ``__call__(shape, dtype=None)`` returns a host array of that shape."""

    def __call__(self, shape, dtype=None, rng=None):
        if isinstance(dtype, np.random.Generator):  # the layers' call: init(shape, rng)
            rng, dtype = dtype, None
        values = np.asarray(self.draw(tuple(int(d) for d in shape), self._generator(rng)))
        return values.astype(dtype or np.float32, copy=False) if dtype is not None else values

    def _generator(self, rng):
        return rng if rng is not None else np.random.default_rng()

    def draw(self, shape, rng) -> np.ndarray:
        raise NotImplementedError

    @property
    def __name__(self) -> str:
        """Keras' snake-case name (HeNormal -> he_normal): what a layer config records."""
        return snake_case(type(self).__name__)

    def get_config(self) -> dict:
        return {}


class RandomInitializer(Initializer):
    """An initializer that draws random numbers. ``seed`` (an int) makes every call draw the same
    values, as in Keras; without it values come from the model's generator (``compile(seed=...)``
    or ``mlp_gpu.utils.set_random_seed``)."""

    def __init__(self, seed=None):
        self.seed = None if seed is None else check_int(seed, f"{type(self).__name__}(seed)", 0)

    def _generator(self, rng):
        if self.seed is not None:
            return np.random.default_rng(self.seed)
        return super()._generator(rng)

    def get_config(self) -> dict:
        return {"seed": self.seed}


class VarianceScaling(RandomInitializer):
    """Keras' VarianceScaling: n = fan_in, fan_out or their mean; a truncated normal with spread
    sqrt(scale / n), an untruncated one, or a uniform on [-sqrt(3 scale / n), +sqrt(3 scale / n)]."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, input_axes=None,
                 output_axes=None):
        super().__init__(seed)
        name = type(self).__name__
        self.input_axes = _check_axes(input_axes, f"{name}(input_axes)")
        self.output_axes = _check_axes(output_axes, f"{name}(output_axes)")
        self.scale = check_number(scale, "VarianceScaling(scale)", 0, low_open=True)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling(mode): expected 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        dist = distribution.lower() if isinstance(distribution, str) else distribution
        dist = "truncated_normal" if dist == "normal" else dist
        if dist not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError("VarianceScaling(distribution): expected 'truncated_normal', 'untruncated_normal' "
                             f"or 'uniform', got {distribution!r}")
        self.mode, self.distribution = mode, dist

    def draw(self, shape, rng):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        if self.distribution == "truncated_normal":
            return _truncated_normal(rng, 0.0, math.sqrt(scale) / TRUNCATION_SPREAD, shape)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(scale), size=shape)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, size=shape)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "input_axes": self.input_axes, "output_axes": self.output_axes}


def _variance_scaling(name, scale, mode, distribution, doc):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {**RandomInitializer.get_config(self), "input_axes": self.input_axes, "output_axes": self.output_axes}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config, "__doc__": doc})


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform", "U(±sqrt(6 / (fan_in + fan_out)))")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                                 "Truncated normal, spread sqrt(2 / (fan_in + fan_out))")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform", "U(±sqrt(6 / fan_in))")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal", "Truncated normal, spread sqrt(2 / fan_in)")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform", "U(±sqrt(3 / fan_in))")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal",
                                "Truncated normal, spread sqrt(1 / fan_in)")


class RandomNormal(RandomInitializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = check_number(mean, "RandomNormal(mean)")
        self.stddev = check_number(stddev, "RandomNormal(stddev)", 0)

    def draw(self, shape, rng):
        return rng.normal(self.mean, self.stddev, size=shape)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    """A normal with ``mean`` and ``stddev``, redrawn outside two standard deviations (Keras' formula:
    the result's spread is about 0.88 stddev)."""

    def draw(self, shape, rng):
        return _truncated_normal(rng, self.mean, self.stddev, shape)


class RandomUniform(RandomInitializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = check_number(minval, "RandomUniform(minval)")
        self.maxval = check_number(maxval, "RandomUniform(maxval)", self.minval)

    def draw(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = check_number(value, "Constant(value)")

    def draw(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class Orthogonal(RandomInitializer):
    """Keras' Orthogonal: Q of the QR decomposition of a standard-normal (max(r, c), min(r, c)) matrix,
    its columns' signs set by R's diagonal, transposed when r < c, reshaped and scaled by ``gain``
    (r: the product of all but the last axis, c: the last)."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = check_number(gain, "Orthogonal(gain)")

    def draw(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the weight must be at least two-dimensional, got shape {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        q, r = np.linalg.qr(rng.normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        return self.gain * (q.T if rows < cols else q).reshape(shape)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


class Identity(Initializer):
    """Keras' Identity: ``gain * eye(rows, cols)`` of a 2-D weight. Its get_config is Keras' ({}: Keras
    does not record the gain)."""

    def __init__(self, gain=1.0):
        self.gain = check_number(gain, "Identity(gain)")

    def draw(self, shape, rng):
        if len(shape) != 2:
            raise ValueError(f"Identity: the weight must be two-dimensional, got shape {shape}")
        return self.gain * np.eye(*shape)


class Zeros(Initializer):
    def draw(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    def draw(self, shape, rng):
        return np.ones(shape)


CLASSES = (GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, VarianceScaling,
           RandomNormal, TruncatedNormal, RandomUniform, Constant, Zeros, Ones, Orthogonal, Identity)
# Keras' lower-case names are the classes too: initializers.he_normal is HeNormal.
glorot_uniform, glorot_normal, he_uniform, he_normal = GlorotUniform, GlorotNormal, HeUniform, HeNormal
lecun_uniform, lecun_normal, variance_scaling = LecunUniform, LecunNormal, VarianceScaling
random_normal, truncated_normal, random_uniform = RandomNormal, TruncatedNormal, RandomUniform
constant, zeros, ones = Constant, Zeros, Ones
orthogonal, identity = Orthogonal, Identity
OrthogonalInitializer, IdentityInitializer = Orthogonal, Identity  # Keras' longer names
INITIALIZERS = {name: cls for cls in CLASSES for name in (cls.__name__, cls().__name__)}
INITIALIZERS.update({"normal": RandomNormal, "uniform": RandomUniform, "zero": Zeros, "one": Ones,
                     "OrthogonalInitializer": Orthogonal, "IdentityInitializer": Identity})


def get(identifier):
    """An initializer from a name ("he_normal", "HeNormal"), a class, an instance, or a callable
    ``(shape, rng) -> array`` (passed through)."""
    if isinstance(identifier, str) and identifier not in INITIALIZERS:
        # load_model(custom_objects=...) puts names in scope
        identifier = get_custom_object(identifier) or identifier
    if isinstance(identifier, str):
        if identifier not in INITIALIZERS:
            raise ValueError(f"kernel_initializer: expected one of {sorted(INITIALIZERS)}, got {identifier!r} "
                             "(a custom initializer named in a saved model needs load_model(path, "
                             "custom_objects={name: initializer}))")
        return INITIALIZERS[identifier]()
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"kernel_initializer: expected a name, an Initializer or a callable, got {identifier!r}")
