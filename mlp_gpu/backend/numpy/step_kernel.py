"""The fused SGD step's compiled body (Numba): compiled_step.py's only module that imports Numba.

``run_step`` executes a step plan handed over as data (compiled_step.py builds it): a table of ops, the
GEMMs' Fortran arguments as addresses with their BLAS thread counts, and the step's buffers. One
compilation, cached on disk by Numba, serves every net and batch size. The formulas are the NumPy
reference's (activations.TABLE, NumpyBackend.loss_grad and count_correct, gather_rows, advance), each in
float32 as NumPy computes it; sums run row by row, so they round in another order than NumPy's pairwise
sums.
"""
from __future__ import annotations

import numba
import numpy as np

from ..shared_constants import ACC, HYPER, PIXEL_MAX

# op table rows: (op, a, b, c, d)
OP_GEMM = 0      # (OP_GEMM, gemm index)
OP_FORWARD = 1   # (OP_FORWARD, activation, buffer, columns): the activation in place
OP_LOSS = 2      # (OP_LOSS, loss kind, logits buffer, gradient buffer, count the correct rows)
OP_BACKWARD = 3  # (OP_BACKWARD, activation, gradient buffer, output buffer, columns): dz <- dz * f'(y)

LINEAR, RELU, LEAKY_RELU, SIGMOID, TANH = range(5)
SPARSE_XENT, XENT, BCE, MSE = range(4)

OK, BAD_ROW, BAD_LABEL = 0, -1, -2  # run_step's status, returned with the thread count it left

_LR, _ITERATIONS = HYPER["lr"], HYPER["iterations"]
_LOSS, _CORRECT, _FINITE = ACC["loss_sum"], ACC["correct"], ACC["finite_steps"]
_SCALE = np.float32(1 / PIXEL_MAX)
_F0, _F1 = np.float32(0.0), np.float32(1.0)
_CLIP = np.float32(88.0)  # stable_sigmoid's bound on exp's argument

jit = numba.njit(cache=True, error_model="numpy")


@jit
def _sigmoid(x):
    """activations.stable_sigmoid: 1 / (1 + exp(clip(-x, -88, 88))), NaN kept as np.clip keeps it."""
    t = -x
    if t > _CLIP:
        t = _CLIP
    elif t < -_CLIP:
        t = -_CLIP
    return _F1 / (_F1 + np.exp(t))


@jit
def _forward(z, cols, act, slope):
    for r in range(z.shape[0]):
        for j in range(cols):
            x = z[r, j]
            if act == RELU:
                if x < _F0:  # np.maximum(z, 0): NaN stays NaN
                    z[r, j] = _F0
            elif act == LEAKY_RELU:  # np.maximum(z, float32(slope) * z)
                if x < _F0:
                    z[r, j] = np.float32(slope) * x
            elif act == SIGMOID:
                z[r, j] = _sigmoid(x)
            elif act == TANH:
                z[r, j] = np.tanh(x)


@jit
def _backward(dz, y, cols, act, slope):
    for r in range(dz.shape[0]):
        for j in range(cols):
            v = y[r, j]
            if act == RELU:
                dz[r, j] *= _F1 if v > _F0 else _F0
            elif act == LEAKY_RELU:  # NumPy multiplies by np.where(y > 0, 1, slope), a float64 array
                dz[r, j] = np.float32(np.float64(dz[r, j]) * (1.0 if v > _F0 else slope))
            elif act == SIGMOID:
                dz[r, j] *= v * (_F1 - v)
            elif act == TANH:
                dz[r, j] *= _F1 - v * v


@jit
def _argmax(z, r, cols):
    """np.argmax of a row: the first largest, or the first NaN."""
    best, at = z[r, 0], 0
    if best != best:
        return 0
    for j in range(1, cols):
        v = z[r, j]
        if v != v:
            return j
        if v > best:
            best, at = v, j
    return at


@jit
def _count_correct(z, labels, targets, sparse, threshold):
    """count_correct: rows whose prediction is the target's class (one unit: z > threshold against t > 0.5)."""
    n, k = z.shape
    hits = 0
    for r in range(n):
        if k == 1:
            t = labels[r] > 0.5 if sparse else targets[r, 0] > 0.5
            hits += (z[r, 0] > threshold) == t
        elif sparse:
            hits += _argmax(z, r, k) == labels[r]
        else:
            hits += _argmax(z, r, k) == _argmax(targets, r, k)
    return hits


@jit
def _loss(kind, z, dz, labels, targets, acc):
    """NumpyBackend.loss_grad's fused losses: acc[loss] += the rows' losses; dz <- d(mean loss)/dz."""
    n, k = z.shape
    inv_n = np.float32(1.0 / n)
    total = 0.0
    for r in range(n):
        if kind == SPARSE_XENT or kind == XENT:
            m = z[r, 0]
            for j in range(1, k):  # z.max(axis=1): NaN wins
                v = z[r, j]
                if v > m or v != v:
                    m = v
            s, picked, weight = _F0, _F0, _F0
            for j in range(k):
                shifted = z[r, j] - m
                if kind == XENT:
                    picked += shifted * targets[r, j]
                    weight += targets[r, j]
                e = np.exp(shifted)
                dz[r, j] = e
                s += e
            if kind == SPARSE_XENT:
                t = labels[r]
                if t < 0 or t >= k:
                    return BAD_LABEL
                total += np.log(s) - (z[r, t] - m)
                sn = s * np.float32(n)
                for j in range(k):
                    dz[r, j] /= sn
                dz[r, t] -= inv_n
            else:
                total += np.log(s) * weight - picked
                for j in range(k):
                    dz[r, j] = (dz[r, j] / s - targets[r, j]) / np.float32(n)
        elif kind == BCE:
            row = _F0
            for j in range(k):
                x, t = z[r, j], targets[r, j]
                row += max(x, _F0) - x * t + np.log1p(np.exp(-abs(x)))
                dz[r, j] = (_sigmoid(x) - t) / np.float32(n * k)
            total += row / np.float32(k)
        else:  # MSE
            row = _F0
            scale = np.float32(2.0 / (n * k))
            for j in range(k):
                d = z[r, j] - targets[r, j]
                row += d * d
                dz[r, j] = d * scale
            total += row / np.float32(k)
    acc[_LOSS] += total
    return OK


@jit
def _gather(x8, xf, pixels, perm, start, xin, cols, y_labels, y_targets, labels, targets, sparse):
    """gather_rows for x and y: the rows perm[start:start + n], uint8 pixels scaled by 1/255."""
    n = xin.shape[0]
    if start < 0 or start + n > perm.shape[0]:
        return BAD_ROW
    rows = min(x8.shape[0] if pixels else xf.shape[0], y_labels.shape[0] if sparse else y_targets.shape[0])
    for r in range(n):
        row = perm[start + r]
        if row < 0 or row >= rows:
            return BAD_ROW
        if pixels:
            for j in range(cols):
                xin[r, j] = np.float32(x8[row, j]) * _SCALE
        else:
            for j in range(cols):
                xin[r, j] = xf[row, j]
        if sparse:
            labels[r] = y_labels[row]
        else:
            for j in range(targets.shape[1]):
                targets[r, j] = y_targets[row, j]
    return OK


@jit
def _set_threads(threads, current, set_first, set_second, setters):
    if threads != 0 and threads != current:
        set_first(threads)
        if setters > 1:
            set_second(threads)
        return threads
    return current


@jit
def run_step(ops, gemm_args, gemm_threads, bufs, gemm, set_first, set_second, setters, gather, x8, xf, perm,
             cursor, sparse, y_labels, y_targets, labels, targets, acc, hyper, slope, threshold, current):
    """One step of ``bufs[0].shape[0]`` rows: the batch at the cursor gathered (``gather``: 1 from uint8 pixels
    ``x8``, 2 from float32 rows ``xf``), the ops in order, the cursor and the counters moved on. ``sparse``:
    the targets are class labels (``labels``), else rows of ``targets``; the unused ones are empty arrays.
    ``slope``: leaky_relu's, as float64; ``current``: the BLAS thread count now. Returns (status, the BLAS
    thread count it left set)."""
    n = bufs[0].shape[0]
    status = _gather(x8, xf, gather == 1, perm, cursor[0], bufs[0], x8.shape[1] if gather == 1 else xf.shape[1],
                     y_labels, y_targets, labels, targets, sparse)
    if status != OK:
        return status, current
    for i in range(ops.shape[0]):
        op, a, b, c, d = ops[i, 0], ops[i, 1], ops[i, 2], ops[i, 3], ops[i, 4]
        if op == OP_GEMM:
            current = _set_threads(gemm_threads[a], current, set_first, set_second, setters)
            g = gemm_args[a]
            gemm(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12])
        elif op == OP_FORWARD:
            _forward(bufs[b], c, a, slope)
        elif op == OP_LOSS:
            if d:
                acc[_CORRECT] += _count_correct(bufs[b], labels, targets, sparse, threshold)
            status = _loss(a, bufs[b], bufs[c], labels, targets, acc)
            if status != OK:
                return status, current
        else:
            _backward(bufs[b], bufs[c], d, a, slope)
    cursor[0] += n
    hyper[_ITERATIONS] += _F1
    if np.isfinite(acc[_LOSS]):
        acc[_FINITE] += 1
    return OK, current

