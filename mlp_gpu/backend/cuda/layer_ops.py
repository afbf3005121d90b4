"""The toolbox ops (dropout, normalization, regularization, clipping, step preparation, the newer
optimizers) as launches of the kernels in ``kernels/``; mixed into ``CudaOps`` so the CuPy backend
and the host harness launch them alike. References: ``layer_ops.py`` and ``optimizer_ops.py``.
Each op asserts its kernel's launch contract (the comment above the entry point) before launching."""
from __future__ import annotations

import numpy as np

from .launch_contract import WARP, check_array, check_block, check_flat, check_int32, require
from ..numpy.layer_ops import NORMALIZATION_EPSILON, dropout_scale, dropout_threshold
from ..shared_constants import ACC_SIZE, COLUMN_ROWS, HYPER_SIZE, REDUCE_BLOCK, SCHEDULE_HEADER


class CudaLayerOps:
    """Launch arithmetic of the toolbox kernels; needs ``launch``, ``_placeholder`` and ``_blocks``."""

    def _opt(self, array, dtype=np.float32):
        return self._placeholder(dtype) if array is None else array

    def dropout(self, x, out, mask, counter, seed, rate):
        n, name = x.size, "dropout_forward"
        for label, a in (("x", x), ("out", out), ("mask", mask)):
            check_array(name, label, a, size=n)
        check_array(name, "counter", counter, (1,), np.int64)
        self.launch(name, self._blocks(-(-n // 4)), (self.BLOCK,),
                    (x, out, mask, counter, np.int64(n), np.uint32(seed & 0xFFFFFFFF),
                     np.uint32((seed >> 32) & 0xFFFFFFFF), np.uint32(dropout_threshold(rate)),
                     np.float32(dropout_scale(rate))))

    def dropout_backward(self, dy, mask, dx):
        for label, a in (("dy", dy), ("mask", mask), ("dx", dx)):
            check_array("dropout_backward", label, a, size=dy.size)
        self.launch("dropout_backward", self._blocks(dy.size), (self.BLOCK,), (dy, mask, dx, np.int64(dy.size)))

    def philox_blocks(self, ctr, out, key):
        count, name = ctr.size // 4, "philox_blocks"
        require(ctr.size % 4 == 0, name, f"ctr must hold whole Philox blocks of 4 words, got {ctr.size}")
        check_array(name, "ctr", ctr, None, np.uint32)
        check_array(name, "out", out, None, np.uint32, size=ctr.size)
        check_int32(name, count=count)
        self.launch(name, self._blocks(count), (self.BLOCK,),
                    (ctr, out, np.int32(count), np.uint32(key[0]), np.uint32(key[1])))

    def _features(self, name, x, full, vectors):
        """x and the full arrays are (n, k) float32, the vectors (k,) float32; None: not passed."""
        n, k = x.shape
        check_array(name, "x", x)
        for label, a in full:
            if a is not None:
                check_array(name, label, a, (n, k))
        for label, a in vectors:
            if a is not None:
                check_array(name, label, a, (k,))
        check_int32(name, k=k)
        return n, k

    def _column_launch(self, name, x, full, vectors):
        """The COLUMN LAUNCH of kernels/normalization.cu, checked: (n, k, grid, block)."""
        n, k = self._features(name, x, full, vectors)
        check_int32(name, n=n)
        require(k >= 1, name, "a column launch needs at least one column")
        block = (WARP, COLUMN_ROWS)
        check_block(name, block)
        return n, k, (-(-k // WARP),), block

    def batchnorm_train(self, x, out, gamma, beta, moving_mean, moving_var, mean, inv_std, momentum, epsilon):
        n, k, grid, block = self._column_launch(
            "batchnorm_train", x, (("out", out),), (("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean),
                                                    ("moving_var", moving_var), ("mean", mean), ("inv_std", inv_std)))
        self.launch("batchnorm_train", grid, block,
                    (x, out, self._opt(gamma), self._opt(beta), moving_mean, moving_var, mean, inv_std,
                     np.int32(n), np.int32(k), np.float32(momentum), np.float32(epsilon),
                     np.int32(gamma is not None), np.int32(beta is not None)))

    def batchnorm_infer(self, x, out, gamma, beta, moving_mean, moving_var, epsilon):
        n, k = self._features("batchnorm_infer", x, (("out", out),), (
            ("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean), ("moving_var", moving_var)))
        self.launch("batchnorm_infer", self._blocks(n * k), (self.BLOCK,),
                    (x, out, self._opt(gamma), self._opt(beta), moving_mean, moving_var, np.int64(n), np.int32(k),
                     np.float32(epsilon), np.int32(gamma is not None), np.int32(beta is not None)))

    def batchnorm_backward(self, x, dy, gamma, mean, inv_std, dgamma, dbeta, dx):
        n, k, grid, block = self._column_launch(
            "batchnorm_backward", x, (("dy", dy), ("dx", dx)),
            (("gamma", gamma), ("mean", mean), ("inv_std", inv_std), ("dgamma", dgamma), ("dbeta", dbeta)))
        self.launch("batchnorm_backward", grid, block,
                    (x, dy, self._opt(gamma), mean, inv_std, self._opt(dgamma), self._opt(dbeta), self._opt(dx),
                     np.int32(n), np.int32(k), np.int32(gamma is not None), np.int32(dgamma is not None),
                     np.int32(dbeta is not None), np.int32(dx is not None)))

    def normalize(self, x, out, mean, variance, invert=False):
        n, k = self._features("normalize", x, (("out", out),), (("mean", mean), ("variance", variance)))
        self.launch("normalize", self._blocks(n * k), (self.BLOCK,),
                    (x, out, self._opt(mean), variance, np.int64(n), np.int32(k), np.float32(NORMALIZATION_EPSILON),
                     np.int32(mean is not None), np.int32(bool(invert))))

    def regularize(self, w, g, l1, l2, acc, rows):
        size, name = w.size, "regularize"
        check_array(name, "w", w)
        if g is not None:
            check_array(name, "g", g, size=size)
        if acc is not None:
            check_array(name, "acc", acc, None, np.float64)
            require(acc.size >= ACC_SIZE, name, f"acc needs at least {ACC_SIZE} slots, got {acc.shape}")
        check_block(name, (REDUCE_BLOCK,), power_of_two=True)
        self.launch(name, self._blocks(size, REDUCE_BLOCK), (REDUCE_BLOCK,),
                    (w, self._opt(g), self._opt(acc, np.float64), np.int64(size), np.float32(l1), np.float32(l2),
                     np.float64(rows), np.int32(g is not None), np.int32(acc is not None)))

    def clip_by_value(self, g, clipvalue):
        check_array("clip_by_value", "g", g)
        self.launch("clip_by_value", self._blocks(g.size), (self.BLOCK,), (g, np.int64(g.size), np.float32(clipvalue)))

    def clip_by_norm(self, g, segments, clipnorm):
        name = "clip_by_norm"
        check_array(name, "g", g)
        check_array(name, "segments", segments, None, np.int64)
        require(segments.ndim == 1 and segments.size >= 2, name,
                f"segments must be the 1-D offsets of at least one segment, got shape {tuple(segments.shape)}")
        check_int32(name, segments=segments.size - 1)
        check_block(name, (REDUCE_BLOCK,), power_of_two=True)
        self.launch(name, (int(segments.size) - 1,), (REDUCE_BLOCK,), (g, segments, np.float64(clipnorm)))

    def optimizer_prepare(self, hyper, table, nadam):
        name = "optimizer_prepare"
        check_array(name, "hyper", hyper, (HYPER_SIZE,))
        if table is not None:
            check_array(name, "table", table, None, np.float64)
            require(table.ndim == 1 and table.size >= SCHEDULE_HEADER, name,
                    f"table must be a schedule table of at least {SCHEDULE_HEADER} entries, got {tuple(table.shape)}")
        self.launch(name, (1,), (1,),
                    (hyper, self._opt(table, np.float64), np.int32(table is not None), np.int32(bool(nadam))))

    def rmsprop_update(self, w, g, velocity, momentum, average, hyper):
        slots = (("grads", g), ("velocity", velocity), ("momentum", momentum), ("average", average))
        size = check_flat("rmsprop_update", w, hyper, *((label, a) for label, a in slots if a is not None))
        self.launch("rmsprop_update", self._blocks(size), (self.BLOCK,),
                    (w, g, velocity, self._opt(momentum), self._opt(average), hyper, np.int64(size),
                     np.int32(momentum is not None), np.int32(average is not None)))

    def adagrad_update(self, w, g, accumulator, hyper):
        size = check_flat("adagrad_update", w, hyper, ("grads", g), ("accumulator", accumulator))
        self.launch("adagrad_update", self._blocks(size), (self.BLOCK,), (w, g, accumulator, hyper, np.int64(size)))

    def accumulate_gradients(self, g, accumulator, hyper):
        size = check_flat("accumulate_gradients", g, hyper, ("accumulator", accumulator))
        self.launch("accumulate_gradients", self._blocks(size), (self.BLOCK,), (g, accumulator, hyper, np.int64(size)))

    def ema_update(self, w, average, hyper, momentum, frequency):
        size = check_flat("ema_update", w, hyper, ("average", average))
        self.launch("ema_update", self._blocks(size), (self.BLOCK,),
                    (w, average, hyper, np.int64(size), np.float32(momentum), np.int32(frequency or 0)))

    def optimizer_update(self, kernel, reference, w, g, state, hyper):
        size = check_flat(kernel, w, hyper, ("grads", g))
        check_array(kernel, "state", state, (state.shape[0], size))
        self.launch(kernel, self._blocks(size), (self.BLOCK,), (w, g, state, hyper, np.int64(size)))

    def nadam_update(self, w, g, m, v, hyper):
        size = check_flat("nadam_update", w, hyper, ("grads", g), ("m", m), ("v", v))
        self.launch("nadam_update", self._blocks(size), (self.BLOCK,), (w, g, m, v, hyper, np.int64(size)))
