"""BatchNormalization and Normalization, with Keras' arguments, defaults and formulas.

Their statistics (moving mean/variance; adapted mean/variance) are non-trainable state: views
of the model's flat state buffer, saved with the weights, never touched by the optimizer.
"""
from __future__ import annotations

import numpy as np

from .. import initializers, regularizers
from .._checks import check_bool, check_number
from .base import Layer, flat_features

ADAPT_CHUNK = 8192            # rows per step when adapt() streams over one big array


def no_constraints(cls, **given):
    """Weight constraints (mlp_gpu.constraints) are not applied by these layers yet: refused by name."""
    used = [k for k, v in given.items() if v is not None]
    if used:
        raise ValueError(f"{cls}({', '.join(used)}): weight constraints are not supported on this layer yet; "
                         "leave them None")


def _axis_last(axis, cls):
    if axis not in (-1, (-1,), [-1]):
        raise ValueError(f"{cls}(axis): only -1 (the features of a flat input) is supported, got {axis!r}")


class BatchNormalization(Layer):
    """``gamma * (x - mean) / sqrt(var + epsilon) + beta`` per feature.

    Training uses the batch's mean and (biased) variance and moves the moving statistics:
    ``moving = moving * momentum + batch * (1 - momentum)``; inference uses the moving ones.
    """

    config_keys = Layer.config_keys | {"axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                                       "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
                                       "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
                                       "renorm", "renorm_clipping", "renorm_momentum", "synchronized"}

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        _axis_last(axis, "BatchNormalization")
        no_constraints(type(self).__name__, beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        # Batch renormalization and cross-replica statistics change the formula: refused, not ignored
        if check_bool(renorm, "BatchNormalization(renorm)") or renorm_clipping is not None:
            raise ValueError("BatchNormalization(renorm, renorm_clipping): batch renormalization is not supported; "
                             f"leave renorm=False and renorm_clipping=None (got {renorm!r}, {renorm_clipping!r})")
        self.renorm_momentum = check_number(renorm_momentum, "BatchNormalization(renorm_momentum)", 0, 1)
        if check_bool(synchronized, "BatchNormalization(synchronized)"):
            raise ValueError("BatchNormalization(synchronized): statistics synchronized across devices are not "
                             "supported; leave synchronized=False")
        self.axis = -1
        self.momentum = check_number(momentum, "BatchNormalization(momentum)", 0, 1)
        self.epsilon = check_number(epsilon, "BatchNormalization(epsilon)", 0, low_open=True)
        self.center = check_bool(center, "BatchNormalization(center)")
        self.scale = check_bool(scale, "BatchNormalization(scale)")
        self.initializer_names = {"beta_initializer": beta_initializer, "gamma_initializer": gamma_initializer,
                                  "moving_mean_initializer": moving_mean_initializer,
                                  "moving_variance_initializer": moving_variance_initializer}
        self._inits = {k: initializers.get(v) for k, v in self.initializer_names.items()}
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def output_shape(self, input_shape):
        self.units = flat_features(self, input_shape)
        return (self.units,)

    def _trainable(self):
        return [name for name, on in (("gamma", self.scale), ("beta", self.center)) if on]

    def param_shapes(self):
        return [(self.units,)] * len(self._trainable())

    def state_shapes(self):
        return [(self.units,), (self.units,)]

    def weight_names(self):
        return self._trainable() + ["moving_mean", "moving_variance"]

    def initial_values(self, rng):
        return [self._inits[f"{name}_initializer"]((self.units,), rng) for name in self._trainable()]

    def initial_state(self):
        rng = np.random.default_rng(0)  # the moving statistics' initializers are constants
        return [self._inits[f"{name}_initializer"]((self.units,), rng) for name in ("moving_mean", "moving_variance")]

    def bind(self, backend, params, grads, state):
        super().bind(backend, params, grads, state)
        named = dict(zip(self._trainable(), zip(params, grads)))
        self.gamma, self.gamma_grad = named.get("gamma", (None, None))
        self.beta, self.beta_grad = named.get("beta", (None, None))
        self.moving_mean, self.moving_variance = state

    def regularized(self):
        pairs = ((self.gamma, self.gamma_grad, self.gamma_regularizer),
                 (self.beta, self.beta_grad, self.beta_regularizer))
        return [p for p in pairs if p[0] is not None and p[2] is not None]

    def buffers(self):
        return {"mean": ((self.units,), False), "inv_std": ((self.units,), False)}

    def forward(self, backend, x, out, training=False, aux=None):
        if training:
            backend.batchnorm_train(x, out, self.gamma, self.beta, self.moving_mean, self.moving_variance,
                                    aux["mean"], aux["inv_std"], self.momentum, self.epsilon)
        else:
            backend.batchnorm_infer(x, out, self.gamma, self.beta, self.moving_mean, self.moving_variance,
                                    self.epsilon)

    def backward(self, backend, x, y, dy, dx, aux=None):
        backend.batchnorm_backward(x, dy, self.gamma, aux["mean"], aux["inv_std"], self.gamma_grad,
                                   self.beta_grad, dx)

    def get_config(self):
        cfg = {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
               "center": self.center, "scale": self.scale}
        cfg.update({k: v if isinstance(v, str) else "custom" for k, v in self.initializer_names.items()})
        for key in ("beta_regularizer", "gamma_regularizer"):
            if getattr(self, key) is not None:
                cfg[key] = regularizers.serialize(getattr(self, key))
        # Keras' keys for what this layer refuses other than at its defaults
        cfg.update(beta_constraint=None, gamma_constraint=None, synchronized=False, renorm=False,
                   renorm_clipping=None, renorm_momentum=self.renorm_momentum)
        return cfg


class Normalization(Layer):
    """``(x - mean) / max(sqrt(variance), 1e-7)`` per feature (``invert=True``: the inverse).

    ``adapt(data)`` computes mean and variance in float64, streaming over batches; or give
    ``mean=`` and ``variance=`` directly. uint8 data are scaled by 1/255, as the model sees them.
    """

    config_keys = Layer.config_keys | {"axis", "mean", "variance", "invert"}

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        _axis_last(axis, "Normalization")
        self.axis = -1
        if (mean is None) != (variance is None):
            raise ValueError("Normalization: give both mean= and variance=, or neither "
                             f"(got mean={mean!r}, variance={variance!r})")
        self.input_mean = None if mean is None else self._vector(mean, "mean")
        self.input_variance = None if variance is None else self._vector(variance, "variance")
        if mean is not None and np.shape(self.input_mean) != np.shape(self.input_variance):
            raise ValueError("Normalization: mean and variance must have the same shape, got "
                             f"{np.shape(self.input_mean)} and {np.shape(self.input_variance)}")
        if self.input_variance is not None and (self.input_variance < 0).any():
            raise ValueError("Normalization(variance): expected values >= 0")
        self.invert = check_bool(invert, "Normalization(invert)")
        self.units = None
        self.count = 0
        self._adapted = None   # (mean, variance) in float64 from adapt(), before the model is built
        self.mean = self.variance = None

    @staticmethod
    def _vector(value, arg):
        try:
            v = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Normalization({arg}): expected a number or a 1-D array of numbers") from None
        if v.ndim > 1 or not np.isfinite(v).all():
            raise ValueError(f"Normalization({arg}): expected finite numbers, a scalar or a 1-D array, got {value!r}")
        return v

    def output_shape(self, input_shape):
        self.units = flat_features(self, input_shape)
        for v, arg in ((self.input_mean, "mean"), (self.input_variance, "variance")):
            if v is not None and v.ndim == 1 and v.size not in (1, self.units):
                raise ValueError(f"Normalization({arg}): {v.size} values for {self.units} features")
        if self._adapted is not None and self._adapted[0].size != self.units:
            raise ValueError(f"Normalization layer {self.name!r}: adapted on {self._adapted[0].size} features, "
                             f"its input has {self.units}")
        return (self.units,)

    def state_shapes(self):
        return [(self.units,), (self.units,), ()]

    def weight_names(self):
        """Keras' mean, variance and count (rows adapted on) -- none when given mean= and variance=."""
        return [] if self.input_mean is not None else ["mean", "variance", "count"]

    def initial_state(self):
        if self.input_mean is not None:
            stats = (self.input_mean, self.input_variance)
        elif self._adapted is not None:
            stats = self._adapted
        else:
            stats = (np.zeros(1), np.ones(1))  # Keras' initializers before adapt
        return [np.broadcast_to(s, (self.units,)).astype(np.float64) for s in stats] + [np.array(self.count, float)]

    def bind(self, backend, params, grads, state):
        super().bind(backend, params, grads, state)
        self.mean, self.variance, self._count = state

    def adapt(self, data, batch_size=None) -> None:
        """Mean and variance of ``data`` per feature: an array (rows, features) or an iterable of
        such batches. Float64 throughout; combined batch by batch (Chan et al.'s parallel update)."""
        if self.input_mean is not None:
            raise RuntimeError("Normalization.adapt: this layer was given mean= and variance= directly")
        batches = self._batches(data, batch_size or ADAPT_CHUNK)
        count, mean, m2 = 0, None, None
        for batch in batches:
            n = batch.shape[0]
            b_mean = batch.mean(axis=0)
            b_m2 = ((batch - b_mean) ** 2).sum(axis=0)
            if mean is None:
                count, mean, m2 = n, b_mean, b_m2
                continue
            delta = b_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + b_m2 + delta * delta * (count * n / total)
            count = total
        if mean is None:
            raise ValueError("Normalization.adapt(data): got no rows")
        if self.units is not None and mean.size != self.units:
            raise ValueError(f"Normalization.adapt(data): {mean.size} features, the layer has {self.units}")
        self._adapted = (mean, m2 / count)
        self.count = count
        if self.mean is not None:  # built: write into the model's state buffer
            self.mean[...] = self.backend.asarray(self._adapted[0].astype(self.mean.dtype))
            self.variance[...] = self.backend.asarray(self._adapted[1].astype(self.variance.dtype))
            self._count[...] = count

    @staticmethod
    def _batches(data, chunk):
        def checked(batch, where):
            batch = np.asarray(batch)
            if batch.ndim != 2 or batch.dtype.kind not in "fiub" or batch.shape[0] == 0:
                raise ValueError(f"Normalization.adapt(data){where}: expected a non-empty numeric array of shape "
                                 f"(rows, features), got {batch.dtype} {batch.shape}; flatten samples first")
            out = batch.astype(np.float64)
            if batch.dtype == np.uint8:
                out *= 1 / 255  # the model scales uint8 pixels the same way
            if not np.isfinite(out).all():
                raise ValueError(f"Normalization.adapt(data){where}: contains NaN or infinity")
            return out

        if hasattr(data, "shape") and hasattr(data, "dtype"):
            for start in range(0, max(int(data.shape[0]), 1), chunk):
                yield checked(data[start:start + chunk], "")
            return
        if not hasattr(data, "__iter__"):
            raise TypeError(f"Normalization.adapt(data): expected an array or an iterable of batches, "
                            f"got {type(data).__name__}")
        for i, batch in enumerate(data):
            if isinstance(batch, tuple):  # (x, y) batches: Keras adapts on x
                batch = batch[0]
            yield checked(batch, f" batch {i}")

    def forward(self, backend, x, out, training=False, aux=None):
        backend.normalize(x, out, self.mean, self.variance, self.invert)

    def backward(self, backend, x, y, dy, dx, aux=None):
        if dx is not None:
            backend.normalize(dy, dx, None, self.variance, self.invert)

    def get_config(self):
        given = self.input_mean is not None  # Keras' keys: axis as a tuple, mean and variance None unless given
        return {**super().get_config(), "axis": (self.axis,), "invert": self.invert,
                "mean": self.input_mean.tolist() if given else None,
                "variance": self.input_variance.tolist() if given else None}
