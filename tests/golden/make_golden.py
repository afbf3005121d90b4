"""Write tests/golden/reference_steps.h5: a small SGD run computed independently of mlp_gpu.

Plain NumPy in float64, written from the formulas (not from mlp_gpu's code): a 6-5-4-3 ReLU/softmax
MLP, sparse softmax cross-entropy averaged over the batch, three SGD steps (lr 0.1) on fixed batches
of 4, 4 and 2 rows (the last one short). Stored: inputs, labels, initial weights, the loss and the
gradients of every step, and the weights after each step. Run it again only if the golden run changes:

    python tests/golden/make_golden.py
"""
from pathlib import Path

import h5py
import numpy as np

SIZES = (6, 5, 4, 3)
BATCHES = ((0, 4), (4, 8), (8, 10))
LR = 0.1


def step(weights, x, y):
    """Loss and gradients of mean softmax cross-entropy, by the chain rule written out."""
    acts = [x]
    for i, (w, b) in enumerate(weights):
        z = acts[-1] @ w + b
        acts.append(np.maximum(z, 0) if i < len(weights) - 1 else z)
    z = acts[-1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.mean(np.log(p[np.arange(n), y]))
    dz = p.copy()
    dz[np.arange(n), y] -= 1
    dz /= n
    grads = [None] * len(weights)
    for i in range(len(weights) - 1, -1, -1):
        grads[i] = (acts[i].T @ dz, dz.sum(axis=0))
        if i:
            dz = (dz @ weights[i][0].T) * (acts[i] > 0)
    return loss, grads


def main():
    rng = np.random.default_rng(2024)
    x = rng.normal(size=(10, SIZES[0]))
    y = rng.integers(0, SIZES[-1], 10)
    weights = [(rng.uniform(-0.8, 0.8, (a, b)), rng.uniform(-0.1, 0.1, b)) for a, b in zip(SIZES[:-1], SIZES[1:])]
    path = Path(__file__).with_name("reference_steps.h5")
    with h5py.File(path, "w") as f:
        f.attrs["description"] = __doc__.splitlines()[0]
        f.attrs["sizes"], f.attrs["lr"], f.attrs["batches"] = SIZES, LR, np.array(BATCHES)
        f["x"], f["y"] = x, y.astype(np.int32)
        for k, (w, b) in enumerate(weights):
            f[f"initial/{k}/kernel"], f[f"initial/{k}/bias"] = w, b
        for s, (lo, hi) in enumerate(BATCHES):
            loss, grads = step(weights, x[lo:hi], y[lo:hi])
            f[f"step{s}/loss"] = loss
            weights = [(w - LR * gw, b - LR * gb) for (w, b), (gw, gb) in zip(weights, grads)]
            for k, ((gw, gb), (w, b)) in enumerate(zip(grads, weights)):
                f[f"step{s}/grad/{k}/kernel"], f[f"step{s}/grad/{k}/bias"] = gw, gb
                f[f"step{s}/after/{k}/kernel"], f[f"step{s}/after/{k}/bias"] = w, b
    print("wrote", path)


if __name__ == "__main__":
    main()
