"""Reference ops of the toolbox layers on NumPy: Philox dropout, batch and feature normalization,
weight regularization. Mixed into the NumPy backend; ``cuda_layer_ops`` launches the kernels in
``kernels/dropout.cu`` and ``kernels/normalization.cu`` that are tested against these bodies.

Layouts: x, out, dy, dx, mask are (N, K) row-major; per-feature vectors (gamma, beta, moving
statistics, batch mean, inverse standard deviation) are (K,); the dropout counter is (1,) int64.
"""
from __future__ import annotations

import numpy as np

from ..shared_constants import DROPOUT_BITS, PHILOX  # noqa: F401 -- PHILOX re-exported: the kernels get the same

_MASK32 = np.uint64(0xFFFFFFFF)
NORMALIZATION_EPSILON = 1e-7  # keras.backend.epsilon(): the floor of Normalization's standard deviation


def philox4x32(counter, key, rounds: int = 10):
    """Philox4x32-R (Salmon et al., SC'11; Random123's philox4x32) on arrays of counters.

    counter: four uint32 arrays (c0..c3) of one shape; key: two ints. Returns four uint32 arrays.
    """
    c0, c1, c2, c3 = (np.asarray(c, np.uint64) for c in counter)
    k0, k1 = np.uint64(int(key[0]) & 0xFFFFFFFF), np.uint64(int(key[1]) & 0xFFFFFFFF)
    m0, m1 = np.uint64(PHILOX["M0"]), np.uint64(PHILOX["M1"])
    w0, w1 = np.uint64(PHILOX["W0"]), np.uint64(PHILOX["W1"])
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + w0) & _MASK32, (k1 + w1) & _MASK32
        p0, p1 = m0 * c0, m1 * c2   # 32 x 32 -> 64 bits: exact in uint64
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _MASK32, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _MASK32
    return tuple(c.astype(np.uint32) for c in (c0, c1, c2, c3))


def dropout_threshold(rate: float) -> int:
    """An element is kept when the top DROPOUT_BITS bits of its Philox word are >= this (P = 1 - rate)."""
    return int(round(float(rate) * (1 << DROPOUT_BITS)))


def dropout_scale(rate: float, dtype=np.float32):
    return np.asarray(0.0 if rate >= 1 else 1.0 / (1.0 - rate), dtype)


def dropout_words(n: int, counter: int, seed: int) -> np.ndarray:
    """Philox word e (e < n) of draw ``counter``: counter block (e // 4 as two words, counter as two
    words), key = seed's two words, word e % 4 of the output."""
    groups = np.arange(-(-n // 4), dtype=np.uint64)
    ctr = (groups & _MASK32, groups >> np.uint64(32), np.full_like(groups, counter & 0xFFFFFFFF),
           np.full_like(groups, (counter >> 32) & 0xFFFFFFFF))
    words = np.stack(philox4x32(ctr, (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)), axis=1)
    return words.reshape(-1)[:n]


class LayerOpsReference:
    """The toolbox layers' fused ops on NumPy arrays (also float64, for gradient checks)."""

    def dropout(self, x, out, mask, counter, seed: int, rate: float) -> None:
        """mask <- (kept ? 1/(1-rate) : 0) from Philox draw counter[0]; out <- x * mask."""
        words = dropout_words(x.size, int(counter[0]), int(seed)).reshape(x.shape)
        keep = (words >> np.uint32(32 - DROPOUT_BITS)) >= dropout_threshold(rate)
        mask[...] = np.where(keep, dropout_scale(rate, mask.dtype), mask.dtype.type(0))
        np.multiply(x, mask, out=out)

    def dropout_backward(self, dy, mask, dx) -> None:
        """dx <- dy * mask (the mask holds 0 or 1/(1-rate))."""
        np.multiply(dy, mask, out=dx)

    def batchnorm_train(self, x, out, gamma, beta, moving_mean, moving_var, mean, inv_std, momentum, epsilon):
        """Batch statistics (biased variance) into mean and inv_std = 1/sqrt(var + eps); out <- the
        normalized x scaled and shifted; moving <- moving * momentum + batch * (1 - momentum)."""
        mean[...] = x.mean(axis=0)
        centered = x - mean
        var = (centered * centered).mean(axis=0)
        inv_std[...] = 1 / np.sqrt(var + x.dtype.type(epsilon))
        np.multiply(centered, inv_std * (1 if gamma is None else gamma), out=out)
        if beta is not None:
            out += beta
        m = moving_mean.dtype.type(momentum)
        moving_mean[...] = moving_mean * m + mean * (1 - m)
        moving_var[...] = moving_var * m + var.astype(moving_var.dtype) * (1 - m)

    def batchnorm_infer(self, x, out, gamma, beta, moving_mean, moving_var, epsilon):
        """out <- (x - moving_mean) / sqrt(moving_var + eps) * gamma + beta."""
        scale = 1 / np.sqrt(moving_var + x.dtype.type(epsilon))
        if gamma is not None:
            scale = scale * gamma
        np.multiply(x - moving_mean, scale, out=out)
        if beta is not None:
            out += beta

    def batchnorm_backward(self, x, dy, gamma, mean, inv_std, dgamma, dbeta, dx):
        """dgamma = sum(dy * xhat), dbeta = sum(dy) (each when not None);
        dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)) when dx is not None."""
        xhat = (x - mean) * inv_std
        sum_dy = dy.sum(axis=0)
        sum_dy_xhat = (dy * xhat).sum(axis=0)
        if dgamma is not None:
            dgamma[...] = sum_dy_xhat
        if dbeta is not None:
            dbeta[...] = sum_dy
        if dx is not None:
            n = x.shape[0]
            scale = inv_std if gamma is None else gamma * inv_std
            dx[...] = scale * (dy - sum_dy / n - xhat * (sum_dy_xhat / n))

    def normalize(self, x, out, mean, variance, invert: bool = False) -> None:
        """out <- (x - mean) / max(sqrt(variance), 1e-7); invert: out <- mean + x * max(...).
        mean None: the scaling alone (the backward pass)."""
        std = np.maximum(np.sqrt(variance), variance.dtype.type(NORMALIZATION_EPSILON))
        if invert:
            np.multiply(x, std, out=out)
            if mean is not None:
                out += mean
        elif mean is None:
            np.divide(x, std, out=out)
        else:
            np.divide(x - mean, std, out=out)

    def regularize(self, w, g, l1: float, l2: float, acc, rows: int) -> None:
        """g += l1 sign(w) + 2 l2 w (g not None); acc[0] += rows * (l1 sum|w| + l2 sum w^2) (acc not None)."""
        if g is not None:
            g += w.dtype.type(l1) * np.sign(w) + w.dtype.type(2 * l2) * w
        if acc is not None:
            w64 = w.astype(np.float64)
            acc[0] += rows * (l1 * np.abs(w64).sum() + l2 * (w64 * w64).sum())
