"""LayerNormalization and UnitNormalization: per-sample normalizations, Keras' arguments, formulas and configs.

Both reduce each sample over ``axis`` (its feature axes; the batch axis 0 is refused): a batch is
(rows, features) in memory and is viewed as (rows, *sample shape) for the reduction. Written once against
``backend.xp`` with ``out=`` into the layer's preallocated buffers, so a captured step allocates nothing.
"""
from __future__ import annotations

import numpy as np

from .. import initializers, regularizers
from .._checks import check_bool, check_number
from .base import Layer
from .normalization import no_constraints

UNIT_NORM_FLOOR = 1e-24  # Keras' min(rsqrt(sum x^2), 1 / 1e-12), as rsqrt(max(sum x^2, 1e-24)): no 1/0 on the way


def _serialized(module, class_name, config):
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def initializer_config(init):
    """An initializer as Keras' get_config writes it; a Python function by its name."""
    if isinstance(init, initializers.Initializer):
        return _serialized("keras.initializers", type(init).__name__, init.get_config())
    return getattr(init, "__name__", "custom")


def get_initializer(value, arg):
    """An initializer from what Keras takes: a name, class, instance, callable or Keras' serialized dict."""
    if isinstance(value, dict):
        cls = initializers.INITIALIZERS.get(value.get("class_name"))
        if cls is None:
            raise ValueError(f"{arg}: expected one of {sorted(initializers.INITIALIZERS)}, got {value!r}")
        try:
            return cls(**dict(value.get("config") or {}))
        except TypeError as exc:
            raise ValueError(f"{arg}: {exc}") from None
    try:
        return initializers.get(value)
    except ValueError as exc:
        raise ValueError(f"{arg}: {exc}") from None


def regularizer_config(reg):
    if reg is None:
        return None
    return _serialized("keras.regularizers", type(reg).__name__, reg.get_config())


def _axes(axis, cls):
    """Keras' axis argument: an int, or a list/tuple of ints (kept as given until the layer is built)."""
    ints = (int, np.integer)
    if isinstance(axis, (list, tuple)) and axis and all(isinstance(a, ints) and not isinstance(a, bool)
                                                        for a in axis):
        return [int(a) for a in axis]
    if isinstance(axis, ints) and not isinstance(axis, (bool, np.bool_)):
        return int(axis)
    raise TypeError(f"{cls}(axis): expected an int or a list/tuple of ints, got {axis!r}")


def _sample_axes(layer, sample_shape):
    """The layer's axes as sorted positions in one sample (the batch axis refused), each checked."""
    ndim = len(sample_shape) + 1
    what = f"{type(layer).__name__} layer {layer.name!r}" if layer.name else f"{type(layer).__name__} layer"
    axes = layer.axis if isinstance(layer.axis, list) else [layer.axis]
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{what}: axis {a} is out of bounds for input shape {(None,) + tuple(sample_shape)}")
        if a % ndim == 0:
            raise ValueError(f"{what}: axis {a} is the batch axis; normalize over feature axes (e.g. -1)")
        out.append(a % ndim - 1)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: axis {layer.axis!r} names an axis twice")
    return sorted(out)


class _PerSample(Layer):
    """Shared shape logic: the sample shape, the reduced axes, and batch views."""

    _abstract = True

    def output_shape(self, input_shape):
        self.sample_shape = tuple(input_shape)
        self._axes = _sample_axes(self, self.sample_shape)
        self._reduce = tuple(a + 1 for a in self._axes)  # in the (rows, *sample) view
        self.reduced_shape = tuple(1 if i in self._axes else d for i, d in enumerate(self.sample_shape))
        return self.sample_shape

    def _view(self, a):
        return a.reshape((a.shape[0],) + self.sample_shape)


class LayerNormalization(_PerSample):
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta``, mean and (biased) variance of each sample over
    ``axis``; gamma and beta have the shape of those axes. Keras' deprecated ``rms_scaling=True`` is refused
    (Keras itself warns that it scales by the variance; use RMS normalization instead)."""

    config_keys = Layer.config_keys | {"axis", "epsilon", "center", "scale", "rms_scaling", "beta_initializer",
                                       "gamma_initializer", "beta_regularizer", "gamma_regularizer",
                                       "beta_constraint", "gamma_constraint"}

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        if check_bool(kwargs.pop("rms_scaling", False), "LayerNormalization(rms_scaling)"):
            raise ValueError("LayerNormalization(rms_scaling): True is deprecated in Keras (it scales by the "
                             "variance, not the root mean square) and not supported; leave it False")
        super().__init__(**kwargs)
        self.axis = _axes(axis, "LayerNormalization")
        self.epsilon = check_number(epsilon, "LayerNormalization(epsilon)", 0, low_open=True)
        self.center = check_bool(center, "LayerNormalization(center)")
        self.scale = check_bool(scale, "LayerNormalization(scale)")
        self.beta_initializer = get_initializer(beta_initializer, "LayerNormalization(beta_initializer)")
        self.gamma_initializer = get_initializer(gamma_initializer, "LayerNormalization(gamma_initializer)")
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        no_constraints("LayerNormalization", beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.gamma = self.beta = self.gamma_grad = self.beta_grad = None

    def output_shape(self, input_shape):
        shape = super().output_shape(input_shape)
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]  # as Keras' build leaves it
        self.weight_shape = tuple(self.sample_shape[a] for a in self._axes)  # Keras' gamma/beta shape
        # gamma broadcast against (rows, *sample): the axes' sizes in place, 1 elsewhere
        self._broadcast = (1,) + tuple(d if i in self._axes else 1 for i, d in enumerate(self.sample_shape))
        self._others = (0,) + tuple(i + 1 for i in range(len(self.sample_shape)) if i not in self._axes)
        return shape

    def _trainable(self):
        return [name for name, on in (("gamma", self.scale), ("beta", self.center)) if on]  # Keras' build order

    def param_shapes(self):
        return [self.weight_shape] * len(self._trainable())

    def weight_names(self):
        return self._trainable()

    def initial_values(self, rng):
        return [getattr(self, f"{name}_initializer")(self.weight_shape, rng) for name in self._trainable()]

    def bind(self, backend, params, grads, state):
        super().bind(backend, params, grads, state)
        named = dict(zip(self._trainable(), zip(params, grads)))
        self.gamma, self.gamma_grad = named.get("gamma", (None, None))
        self.beta, self.beta_grad = named.get("beta", (None, None))

    def regularized(self):
        pairs = ((self.gamma, self.gamma_grad, self.gamma_regularizer),
                 (self.beta, self.beta_grad, self.beta_regularizer))
        return [p for p in pairs if p[0] is not None and p[2] is not None]

    def buffers(self):
        r = self.reduced_shape
        return {"mean": (r, True), "inv_std": (r, True), "t": (r, True), "xhat": (self.sample_shape, True),
                "full": (self.sample_shape, True)}

    def forward(self, backend, x, out, training=False, aux=None):
        xp, ax = backend.xp, self._reduce
        x, out = self._view(x), self._view(out)
        mean, inv, xhat = aux["mean"], aux["inv_std"], aux["xhat"]
        xp.mean(x, axis=ax, keepdims=True, out=mean)
        xp.subtract(x, mean, out=xhat)
        xp.multiply(xhat, xhat, out=out)
        xp.mean(out, axis=ax, keepdims=True, out=inv)   # the biased variance, as Keras
        inv += self.epsilon
        xp.sqrt(inv, out=inv)
        xp.reciprocal(inv, out=inv)
        xhat *= inv
        if self.gamma is not None:
            xp.multiply(xhat, self.gamma.reshape(self._broadcast), out=out)
        else:
            xp.copyto(out, xhat)
        if self.beta is not None:
            out += self.beta.reshape(self._broadcast)

    def backward(self, backend, x, y, dy, dx, aux=None):
        """dgamma = sum(dy * xhat), dbeta = sum(dy) over rows and the other axes;
        dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)) over the axes, g = dy * gamma."""
        xp, ax = backend.xp, self._reduce
        dy = self._view(dy)
        inv, xhat, full, t, mean = aux["inv_std"], aux["xhat"], aux["full"], aux["t"], aux["mean"]
        if self.gamma_grad is not None:
            xp.multiply(dy, xhat, out=full)
            xp.sum(full, axis=self._others, out=self.gamma_grad)
        if self.beta_grad is not None:
            xp.sum(dy, axis=self._others, out=self.beta_grad)
        if dx is None:
            return
        dx = self._view(dx)
        if self.gamma is not None:
            dy *= self.gamma.reshape(self._broadcast)   # the protocol lets backward overwrite dy
        xp.multiply(dy, xhat, out=full)
        xp.mean(full, axis=ax, keepdims=True, out=t)
        xp.mean(dy, axis=ax, keepdims=True, out=mean)  # the forward's mean is no longer needed
        xp.multiply(xhat, t, out=full)
        xp.subtract(dy, mean, out=dx)
        dx -= full
        dx *= inv

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": False,
                "beta_initializer": initializer_config(self.beta_initializer),
                "gamma_initializer": initializer_config(self.gamma_initializer),
                "beta_regularizer": regularizer_config(self.beta_regularizer),
                "gamma_regularizer": regularizer_config(self.gamma_regularizer),
                "beta_constraint": None, "gamma_constraint": None}


class UnitNormalization(_PerSample):
    """``x * min(1 / sqrt(sum(x ** 2)), 1e12)`` over ``axis`` of each sample (Keras' ``ops.normalize``,
    order 2, epsilon 1e-12): unit L2 norm, an all-zero sample stays zero."""

    config_keys = Layer.config_keys | {"axis"}

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axes(axis, "UnitNormalization")

    def buffers(self):
        r = self.reduced_shape
        return {"inv_norm": (r, True), "free": (r, True), "t": (r, True), "full": (self.sample_shape, True)}

    def forward(self, backend, x, out, training=False, aux=None):
        xp = backend.xp
        x, out = self._view(x), self._view(out)
        inv, free = aux["inv_norm"], aux["free"]
        xp.multiply(x, x, out=out)
        xp.sum(out, axis=self._reduce, keepdims=True, out=inv)
        xp.greater(inv, UNIT_NORM_FLOOR, out=free)     # 1 where the norm is not clipped: the gradient's term
        xp.maximum(inv, UNIT_NORM_FLOOR, out=inv)
        xp.sqrt(inv, out=inv)
        xp.reciprocal(inv, out=inv)
        xp.multiply(x, inv, out=out)

    def backward(self, backend, x, y, dy, dx, aux=None):
        """dx = inv_norm * (dy - y * sum(dy * y)); where the norm is clipped, dx = dy * 1e12."""
        if dx is None:
            return
        xp = backend.xp
        dy, y, dx = self._view(dy), self._view(y), self._view(dx)
        full, t = aux["full"], aux["t"]
        xp.multiply(dy, y, out=full)
        xp.sum(full, axis=self._reduce, keepdims=True, out=t)
        t *= aux["free"]
        xp.multiply(y, t, out=full)
        xp.subtract(dy, full, out=dx)
        dx *= aux["inv_norm"]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
