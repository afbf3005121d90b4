"""The toolbox ops (dropout, normalization, regularization, clipping, step preparation, the newer
optimizers) as launches of the kernels in ``kernels/``; mixed into ``CudaOps`` so the CuPy backend
and the host harness launch them alike. References: ``layer_ops.py`` and ``optimizer_ops.py``."""
from __future__ import annotations

import numpy as np

from .layer_ops import NORMALIZATION_EPSILON, dropout_scale, dropout_threshold

COLUMN_ROWS = 8      # rows lanes of the column kernels (kernels/normalization.cu)
REDUCE_BLOCK = 256   # threads of the reducing kernels (kernels/gradients.cu)


class CudaLayerOps:
    """Launch arithmetic of the toolbox kernels; needs ``launch``, ``_placeholder`` and ``_blocks``."""

    def _opt(self, array, dtype=np.float32):
        return self._placeholder(dtype) if array is None else array

    def dropout(self, x, out, mask, counter, seed, rate):
        n = x.size
        self.launch("dropout_forward", self._blocks(-(-n // 4)), (self.BLOCK,),
                    (x, out, mask, counter, np.int64(n), np.uint32(seed & 0xFFFFFFFF),
                     np.uint32((seed >> 32) & 0xFFFFFFFF), np.uint32(dropout_threshold(rate)),
                     np.float32(dropout_scale(rate))))

    def dropout_backward(self, dy, mask, dx):
        self.launch("dropout_backward", self._blocks(dy.size), (self.BLOCK,), (dy, mask, dx, np.int64(dy.size)))

    def philox_blocks(self, ctr, out, key):
        count = ctr.size // 4
        self.launch("philox_blocks", self._blocks(count), (self.BLOCK,),
                    (ctr, out, np.int32(count), np.uint32(key[0]), np.uint32(key[1])))

    def batchnorm_train(self, x, out, gamma, beta, moving_mean, moving_var, mean, inv_std, momentum, epsilon):
        n, k = x.shape
        self.launch("batchnorm_train", (-(-k // 32),), (32, COLUMN_ROWS),
                    (x, out, self._opt(gamma), self._opt(beta), moving_mean, moving_var, mean, inv_std,
                     np.int32(n), np.int32(k), np.float32(momentum), np.float32(epsilon),
                     np.int32(gamma is not None), np.int32(beta is not None)))

    def batchnorm_infer(self, x, out, gamma, beta, moving_mean, moving_var, epsilon):
        n, k = x.shape
        self.launch("batchnorm_infer", self._blocks(n * k), (self.BLOCK,),
                    (x, out, self._opt(gamma), self._opt(beta), moving_mean, moving_var, np.int64(n), np.int32(k),
                     np.float32(epsilon), np.int32(gamma is not None), np.int32(beta is not None)))

    def batchnorm_backward(self, x, dy, gamma, mean, inv_std, dgamma, dbeta, dx):
        n, k = x.shape
        self.launch("batchnorm_backward", (-(-k // 32),), (32, COLUMN_ROWS),
                    (x, dy, self._opt(gamma), mean, inv_std, self._opt(dgamma), self._opt(dbeta), self._opt(dx),
                     np.int32(n), np.int32(k), np.int32(gamma is not None), np.int32(dgamma is not None),
                     np.int32(dbeta is not None), np.int32(dx is not None)))

    def normalize(self, x, out, mean, variance, invert=False):
        n, k = x.shape
        self.launch("normalize", self._blocks(n * k), (self.BLOCK,),
                    (x, out, self._opt(mean), variance, np.int64(n), np.int32(k), np.float32(NORMALIZATION_EPSILON),
                     np.int32(mean is not None), np.int32(bool(invert))))

    def regularize(self, w, g, l1, l2, acc, rows):
        size = w.size
        self.launch("regularize", self._blocks(size, REDUCE_BLOCK), (REDUCE_BLOCK,),
                    (w, self._opt(g), self._opt(acc, np.float64), np.int64(size), np.float32(l1), np.float32(l2),
                     np.float64(rows), np.int32(g is not None), np.int32(acc is not None)))

    def clip_by_value(self, g, clipvalue):
        self.launch("clip_by_value", self._blocks(g.size), (self.BLOCK,), (g, np.int64(g.size), np.float32(clipvalue)))

    def clip_by_norm(self, g, segments, clipnorm):
        self.launch("clip_by_norm", (int(segments.size) - 1,), (REDUCE_BLOCK,), (g, segments, np.float64(clipnorm)))

    def optimizer_prepare(self, hyper, table, nadam):
        self.launch("optimizer_prepare", (1,), (1,),
                    (hyper, self._opt(table, np.float64), np.int32(table is not None), np.int32(bool(nadam))))

    def rmsprop_update(self, w, g, velocity, momentum, average, hyper):
        size = w.size
        self.launch("rmsprop_update", self._blocks(size), (self.BLOCK,),
                    (w, g, velocity, self._opt(momentum), self._opt(average), hyper, np.int64(size),
                     np.int32(momentum is not None), np.int32(average is not None)))

    def adagrad_update(self, w, g, accumulator, hyper):
        self.launch("adagrad_update", self._blocks(w.size), (self.BLOCK,), (w, g, accumulator, hyper, np.int64(w.size)))

    def nadam_update(self, w, g, m, v, hyper):
        self.launch("nadam_update", self._blocks(w.size), (self.BLOCK,), (w, g, m, v, hyper, np.int64(w.size)))
