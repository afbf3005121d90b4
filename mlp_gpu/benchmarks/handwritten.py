"""The minimal hand-written NumPy training loop: the CPU reference the framework is measured against.

The same math as mlp_gpu's NumPy backend for 784-300-100-10 ReLU/softmax with
plain SGD: shuffle, batch, forward, softmax cross-entropy, backward, update.
"""
from __future__ import annotations

import numpy as np


def init(sizes, rng):
    """Glorot-uniform kernels, zero biases (as Keras and mlp_gpu)."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        params.append([rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32),
                       np.zeros(fan_out, np.float32)])
    return params


def train_epoch(params, x, y, lr, batch_size, rng):
    """One epoch of minibatch SGD; returns the mean training loss."""
    n = len(x)
    order = rng.permutation(n)
    total = 0.0
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        xb, yb = x[idx], y[idx]
        acts = [xb]
        for i, (w, b) in enumerate(params):
            z = acts[-1] @ w + b
            acts.append(np.maximum(z, 0) if i < len(params) - 1 else z)
        logits = acts[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sums = exp.sum(axis=1, keepdims=True)
        rows = np.arange(len(idx))
        total += float((np.log(sums[:, 0]) - shifted[rows, yb]).sum())
        grad = exp / sums
        grad[rows, yb] -= 1
        grad /= len(idx)
        for i in range(len(params) - 1, -1, -1):
            w, b = params[i]
            dw = acts[i].T @ grad
            db = grad.sum(axis=0)
            if i:
                grad = (grad @ w.T) * (acts[i] > 0)
            w -= lr * dw
            b -= lr * db
    return total / n


def accuracy(params, x, y):
    a = x
    for i, (w, b) in enumerate(params):
        a = a @ w + b
        if i < len(params) - 1:
            a = np.maximum(a, 0)
    return float(np.mean(a.argmax(axis=1) == y))
