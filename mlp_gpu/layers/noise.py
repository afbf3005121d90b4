"""Keras' noise layers, active only in training (``fit``, or a call with ``training=True``), the identity
otherwise:

- ``GaussianNoise(stddev)``: ``x + N(0, stddev)``;
- ``GaussianDropout(rate)``: ``x * N(1, sqrt(rate / (1 - rate)))``;
- ``AlphaDropout(rate)``: Keras' SELU-preserving dropout, ``a * (x * kept + alpha_p * (1 - kept)) + b``.

Draws are keyed like Dropout's (layers/dropout.py): the layer's seed (or one drawn from the model's seed)
and the model's device-side draw counter, so a replayed CUDA graph draws fresh noise every step.
AlphaDropout keeps with the backend's Philox dropout op. The normal draws are a counter-based hash of
(element, counter, key) into two 24-bit uniforms and Box-Muller, written once against ``backend.xp``
with ``out=`` into the layer's buffers, so a captured step allocates nothing.
"""
from __future__ import annotations

import math

import numpy as np

from .._checks import check_int, check_number
from .base import Layer
from .dropout import Dropout
from .reshaping import flat_rows

# Rows of element ids made at build (4 MiB), so no captured training step allocates; a bigger batch (an eager
# call of over a million rows) makes more then.
ID_ROWS = 1 << 20
MIX = (0x21F0AAAD, 0x735A2D97)  # the multipliers of Wellons' "lowbias32" integer hash (shifts 16, 15, 15)
# odd constants that part the two uniforms' hashes (not Philox's, which are the dropout kernels')
STREAMS = (0x27D4EB2F, 0x85EBCA6B)
SELU_ALPHA = 1.6732632423543772848170429916717  # Keras' AlphaDropout constants
SELU_SCALE = 1.0507009873554804934193349852946


class _Noise(Layer):
    """Shared by the noise layers: Dropout's seed, key and counter (its ``attach_rng``), any sample shape
    (they are element-wise), and the normal draws."""

    _abstract = True
    uses_rng = True
    attach_rng = Dropout.attach_rng

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = None if seed is None else check_int(seed, f"{type(self).__name__}(seed)", 0, 2**64 - 1)
        self.key = self.seed      # the draws' key; drawn from the model's seed when seed is None
        self.counter = None       # the model's device-side draw counter, set at build

    def output_shape(self, input_shape):
        self.units = int(np.prod(input_shape))
        return tuple(input_shape)

    def bind(self, backend, params, grads, state):
        super().bind(backend, params, grads, state)
        self._make_ids(ID_ROWS)  # at build: never inside a captured step

    def _make_ids(self, rows):
        """Each element's index (mod 2^32) as row * units (a column) plus col (a row): both broadcast to the
        batch, as CuPy's out= asks (it does not broadcast an input to out alone)."""
        self._row_ids = self.backend.asarray((np.arange(rows, dtype=np.uint64) * self.units).astype(np.uint32)
                                             .reshape(rows, 1))
        self._col_ids = self.backend.asarray(np.arange(self.units, dtype=np.uint32))

    def buffers(self):
        return {k: ((self.units,), True) for k in ("a", "b", "t", "u")}

    def _uints(self, xp, buf):
        """A float buffer's bytes as uint32 (rows, units) (a float64 buffer: the first half of each row)."""
        return flat_rows(buf).view(xp.uint32)[:, :self.units]

    def normal(self, xp, out, aux):
        """out (rows, units) <- N(0, 1), one draw per element, from draw counter[0] and the key."""
        rows = out.shape[0]
        if self._row_ids.shape[0] < rows:  # a batch above ID_ROWS rows
            self._make_ids(rows)
        a, b, t = (self._uints(xp, aux[k]) for k in ("a", "b", "t"))
        u = flat_rows(aux["u"])
        counter = self.counter.view(xp.uint32)  # the int64 counter as (low, high) words, on the device
        k0, k1 = self.key & 0xFFFFFFFF, (self.key >> 32) & 0xFFFFFFFF
        xp.add(self._row_ids[:rows], self._col_ids, out=a)  # the element's index (mod 2^32)
        for word in (xp.uint32(k0), counter[0:1], counter[1:2]):
            xp.bitwise_xor(a, word, out=a)
            _mix(xp, a, t)
        xp.bitwise_xor(a, xp.uint32(k1), out=a)
        _mix(xp, a, t)                                    # a: this element's state for this draw
        xp.bitwise_xor(a, xp.uint32(STREAMS[1]), out=b)
        _mix(xp, b, t)
        xp.bitwise_xor(a, xp.uint32(STREAMS[0]), out=a)
        _mix(xp, a, t)
        _uniform(xp, a, out)                              # u1 in (0, 1)
        _uniform(xp, b, u)                                # u2 in (0, 1)
        xp.log(out, out=out)                              # Box-Muller: sqrt(-2 ln u1) cos(2 pi u2)
        out *= -2.0
        xp.sqrt(out, out=out)
        u *= 2.0 * math.pi
        xp.cos(u, out=u)
        out *= u

    def get_config(self):
        # the key in use once built, as Dropout's: a saved and reloaded model draws the same noise
        return {**super().get_config(), "seed": self.key}


class GaussianNoise(_Noise):
    """``GaussianNoise(stddev, seed=None)``: in training ``x + N(0, stddev)`` element-wise."""

    config_keys = Layer.config_keys | {"stddev", "seed"}

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.stddev = check_number(stddev, "GaussianNoise(stddev)", 0, 1)  # Keras' bounds

    def forward(self, backend, x, out, training=False, aux=None):
        x, out = flat_rows(x), flat_rows(out)
        if not (training and self.stddev > 0):
            backend.xp.copyto(out, x)
            return
        self.normal(backend.xp, out, aux)
        out *= self.stddev
        out += x

    def backward(self, backend, x, y, dy, dx, aux=None):
        if dx is not None:
            backend.xp.copyto(flat_rows(dx), flat_rows(dy))

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


class GaussianDropout(_Noise):
    """``GaussianDropout(rate, seed=None)``: in training ``x * N(1, sqrt(rate / (1 - rate)))`` element-wise."""

    config_keys = Layer.config_keys | {"rate", "seed"}

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        # rate 1 is Keras' bound too, but its spread sqrt(1 / 0) fails there at the first call
        self.rate = check_number(rate, "GaussianDropout(rate)", 0, 1, high_open=True)

    _noisy = False

    def buffers(self):
        return {**super().buffers(), "factor": ((self.units,), True)}

    def forward(self, backend, x, out, training=False, aux=None):
        xp, x, out = backend.xp, flat_rows(x), flat_rows(out)
        self._noisy = training and self.rate > 0  # what backward's gradient is (a call may force training=False)
        if not self._noisy:
            xp.copyto(out, x)
            return
        factor = flat_rows(aux["factor"])
        self.normal(xp, factor, aux)
        factor *= math.sqrt(self.rate / (1.0 - self.rate))
        factor += 1.0
        xp.multiply(x, factor, out=out)

    def backward(self, backend, x, y, dy, dx, aux=None):
        if dx is not None:
            if self._noisy:
                backend.xp.multiply(flat_rows(dy), flat_rows(aux["factor"]), out=flat_rows(dx))
            else:
                backend.xp.copyto(flat_rows(dx), flat_rows(dy))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class AlphaDropout(Dropout):
    """``AlphaDropout(rate, noise_shape=None, seed=None)``: in training, Keras' ``a * (x * kept + alpha_p *
    (1 - kept)) + b`` with kept ~ Bernoulli(1 - rate), ``alpha_p = -alpha * scale`` (SELU's constants),
    ``a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5`` and ``b = -a * alpha_p * rate``. The mask comes
    from the backend's Philox dropout op, as Dropout's."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(rate, noise_shape, seed, **kwargs)
        if self.rate >= 1:  # Keras' a = 0 ** -0.5 fails at the first call
            raise ValueError(f"AlphaDropout(rate): expected a number in [0, 1), got {rate!r}")
        alpha_p = -SELU_ALPHA * SELU_SCALE
        self._alpha_p = alpha_p
        self._a = ((1 - self.rate) * (1 + self.rate * alpha_p ** 2)) ** -0.5
        self._b = -self._a * alpha_p * self.rate

    _noisy = False

    def output_shape(self, input_shape):
        self.units = int(np.prod(input_shape))
        return tuple(input_shape)

    def buffers(self):
        return {"mask": ((self.units,), True), "shifted": ((self.units,), True)}

    def forward(self, backend, x, out, training=False, aux=None):
        xp, x, out = backend.xp, flat_rows(x), flat_rows(out)
        self._noisy = training and self.rate > 0  # what backward's gradient is (a call may force training=False)
        if not self._noisy:
            xp.copyto(out, x)
            return
        # a * kept * (x - alpha_p) + a * alpha_p + b: the dropout op gives (x - alpha_p) * kept / (1 - rate)
        mask, shifted = flat_rows(aux["mask"]), flat_rows(aux["shifted"])
        xp.subtract(x, self._alpha_p, out=shifted)
        backend.dropout(shifted, out, mask, self.counter, self.key, self.rate)
        keep_scale = self._a * (1.0 - self.rate)
        out *= keep_scale
        out += self._a * self._alpha_p + self._b
        mask *= keep_scale  # now a * kept: the gradient's factor

    def backward(self, backend, x, y, dy, dx, aux=None):
        if dx is not None:
            if self._noisy:
                backend.dropout_backward(flat_rows(dy), flat_rows(aux["mask"]), flat_rows(dx))
            else:
                backend.xp.copyto(flat_rows(dx), flat_rows(dy))


def _mix(xp, h, tmp):
    """h <- lowbias32(h) in place (uint32 products wrap, as the hash means); tmp: uint32 scratch."""
    for shift, mult in ((16, MIX[0]), (15, MIX[1]), (15, None)):
        xp.right_shift(h, xp.uint32(shift), out=tmp)
        xp.bitwise_xor(h, tmp, out=h)
        if mult is not None:
            xp.multiply(h, xp.uint32(mult), out=h)


def _uniform(xp, h, out):
    """out <- ((h >> 8) + 0.5) / 2^24: the top 24 bits as a float in (0, 1), never 0 (log(u1) is finite)."""
    xp.right_shift(h, xp.uint32(8), out=h)
    xp.add(h, 0.5, out=out)
    out *= 1.0 / (1 << 24)
