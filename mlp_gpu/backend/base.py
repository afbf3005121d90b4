"""The backend interface and its reference implementation, written once against ``xp``.

Every fused op works in place on preallocated buffers (nothing allocates per
step on a GPU backend). The bodies here are the NumPy reference and the test
oracle; the CuPy backend overrides them with kernels from ``kernels/``.

Layouts (row-major, one sample a row):
    z, y, dz, dy : (N, K) float32     activations and their gradients
    b, db        : (K,)   float32     bias and its gradient
    target       : (N,) int32 labels, or (N, K) float32 targets
    acc          : (3,)   float64     [sum of per-row losses, correct count, steps whose running loss
                                      was still finite] -- the last names the step a run diverged at
    cursor       : (1,)   int64       position of the batch in the permutation
    hyper        : (8,)   float32     optimizer scalars, see ``HYPER``
"""
from __future__ import annotations

import numpy as np

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")
LOSS_KINDS = ("softmax_xent_sparse", "softmax_xent", "sigmoid_bce", "mse")
METRIC_KINDS = ("abs_error", "squared_error", "binary_hits")
ACC = {"loss_sum": 0, "correct": 1, "finite_steps": 2}
ACC_SIZE = 3
# Slots of the optimizer's scalar buffer; kept on the device so that a captured
# step can read a changed learning rate without being captured again.
HYPER = {"lr": 0, "momentum": 1, "beta_1": 2, "beta_2": 3, "epsilon": 4, "iterations": 5,
         "rho": 6, "weight_decay": 7, "u_product": 8}
HYPER_SIZE = 16


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine; the message says why."""


class DeviceMemoryError(MemoryError):
    """A buffer does not fit in the device's free memory; the message gives the sizes."""


def device_memory_message(shape, dtype, free: int, total: int) -> str:
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    mib = 1 << 20
    return (f"device memory: an array of shape {tuple(shape)} {np.dtype(dtype).name} needs {nbytes / mib:,.1f} MiB "
            f"but the GPU has {free / mib:,.1f} MiB free of {total / mib:,.1f} MiB; use a smaller batch_size, "
            "fewer rows or a smaller network")


class StepRunner:
    """Runs ``count`` consecutive training steps per call; ``block`` is the most one call takes."""

    def __init__(self, step, block: int = 1):
        self.step, self.block = step, block

    def __call__(self, count: int = 1) -> None:
        for _ in range(count):
            self.step()


class Backend:
    """Array module, memory and fused ops for one device."""

    name = "abstract"
    xp = np

    # ---- memory -----------------------------------------------------------
    def empty(self, shape, dtype=np.float32):
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype=np.float32):
        return self.xp.zeros(shape, dtype=dtype)

    def asarray(self, host, dtype=None):
        """Copy a host array to this device (no copy when already there)."""
        return self.xp.asarray(host, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        """A host copy, never a view: callers keep it while the device buffer changes."""
        return np.array(a)

    def copy_from_host(self, dst, host) -> None:
        """dst[...] <- host, into existing device memory (a captured graph keeps its pointers)."""
        dst[...] = host

    def synchronize(self) -> None:
        """Wait for queued device work; a no-op on the CPU."""

    def describe(self) -> dict:
        return {"backend": self.name, "device": "cpu", "numpy": np.__version__}

    def memory_bytes(self) -> int:
        """Bytes this backend holds on its device (0 on the CPU)."""
        return 0

    def make_runner(self, step, rows: int, max_steps: int | None = None, **parts) -> "StepRunner":
        """Return a StepRunner for ``step()``; GPU backends may capture blocks of steps as graphs.

        ``max_steps`` caps the steps one call may run (1 when callbacks read every step). ``parts``
        (model, data, acc) let a backend build its own fused step instead of ``step``.
        """
        return StepRunner(step)

    # ---- dense algebra ------------------------------------------------------
    def matmul(self, a, b, out, trans_a: bool = False, trans_b: bool = False):
        """out <- op(a) @ op(b)."""
        return self.xp.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)

    # ---- fused ops ----------------------------------------------------------
    def bias_act(self, z, b, act: str) -> None:
        """z <- act(z + b), in place; softmax is taken per row."""
        xp = self.xp
        z += b
        if act == "relu":
            xp.maximum(z, 0, out=z)
        elif act == "sigmoid":
            # 1 / (1 + exp(-z)) without overflow warnings for large negative z
            xp.negative(z, out=z)
            xp.clip(z, -88.0, 88.0, out=z)
            xp.exp(z, out=z)
            z += 1
            xp.reciprocal(z, out=z)
        elif act == "tanh":
            xp.tanh(z, out=z)
        elif act == "softmax":
            z -= z.max(axis=1, keepdims=True)
            xp.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
        elif act != "linear":
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {act!r}")

    def act_backward(self, dy, y, act: str) -> None:
        """dy <- dy * act'(.) in place, expressed through the activation's output y."""
        xp = self.xp
        if act == "relu":
            xp.multiply(dy, y > 0, out=dy)
        elif act == "sigmoid":
            dy *= y * (1 - y)
        elif act == "tanh":
            dy *= 1 - y * y
        elif act == "softmax":
            s = (dy * y).sum(axis=1, keepdims=True)
            dy -= s
            dy *= y
        elif act != "linear":
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {act!r}")

    def bias_grad(self, dz, db) -> None:
        """db <- column sums of dz."""
        dz.sum(axis=0, out=db)

    def loss_grad(self, kind: str, z, target, dz, acc, count: bool = False, threshold: float = 0.0) -> None:
        """dz <- d(mean row loss)/dz; acc[0] += sum of row losses; with ``count`` also acc[1] += correct rows.

        ``softmax_xent*`` and ``sigmoid_bce`` take logits z (the activation is
        fused into the loss for numerical stability); ``mse`` takes outputs.
        ``threshold`` is as in :meth:`count_correct`.
        """
        if count:
            self.count_correct(z, target, acc, threshold)
        xp = self.xp
        n, k = z.shape
        if kind in ("softmax_xent_sparse", "softmax_xent"):
            xp.subtract(z, z.max(axis=1, keepdims=True), out=dz)  # shifted logits
            # row loss = log(sum exp(shifted)) - shifted[label]
            if kind == "softmax_xent_sparse":
                rows = xp.arange(n)
                picked = dz[rows, target]
            else:
                picked = (dz * target).sum(axis=1)
            xp.exp(dz, out=dz)
            total = dz.sum(axis=1, keepdims=True)
            dz /= total
            if kind == "softmax_xent_sparse":
                acc[0] += (xp.log(total[:, 0]) - picked).sum()
                dz[rows, target] -= 1
            else:
                acc[0] += (xp.log(total[:, 0]) * target.sum(axis=1) - picked).sum()
                dz -= target
            dz /= n
        elif kind == "sigmoid_bce":
            # max(z,0) - z t + log(1 + exp(-|z|)), averaged over the outputs of a row
            elem = xp.maximum(z, 0) - z * target + xp.log1p(xp.exp(-xp.abs(z)))
            acc[0] += elem.sum() / k
            xp.negative(z, out=dz)
            xp.clip(dz, -88.0, 88.0, out=dz)
            xp.exp(dz, out=dz)
            dz += 1
            xp.reciprocal(dz, out=dz)
            dz -= target
            dz /= n * k
        elif kind == "mse":
            xp.subtract(z, target, out=dz)
            acc[0] += (dz * dz).sum() / k
            dz *= 2.0 / (n * k)
        else:
            raise ValueError(f"loss kind: expected one of {LOSS_KINDS}, got {kind!r}")

    def metric_sum(self, kind: str, z, target, acc, slot: int, activation: str = "linear",
                   threshold: float = 0.5) -> None:
        """acc[slot] += sum over rows of the row mean of f(p, t), p = activation(z) taken per row.

        ``z`` (N, K) holds the last layer's outputs, or its pre-activation when the loss fused the
        activation (then ``activation`` is "sigmoid" or "softmax"); ``target`` (N, K) floats. f by
        ``kind`` (METRIC_KINDS): abs_error |p - t|, squared_error (p - t)^2, binary_hits t == (p > threshold).
        """
        xp = self.xp
        if activation == "sigmoid":
            p = 1 / (1 + xp.exp(-xp.clip(z, -88.0, 88.0)))
        elif activation == "softmax":
            p = xp.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
        elif activation == "linear":
            p = z
        else:
            raise ValueError(f"activation: expected 'linear', 'sigmoid' or 'softmax', got {activation!r}")
        t = target.reshape(z.shape)
        if kind == "abs_error":
            values = xp.abs(p - t)
        elif kind == "squared_error":
            values = (p - t) ** 2
        elif kind == "binary_hits":
            values = (t == (p > threshold)).astype(z.dtype)
        else:
            raise ValueError(f"metric kind: expected one of {METRIC_KINDS}, got {kind!r}")
        acc[slot] += values.mean(axis=1).sum()

    def count_correct(self, z, target, acc, threshold: float = 0.0) -> None:
        """acc[1] += rows predicted right.

        Several columns: argmax(z) against the label (or argmax of a one-hot
        target). One column: (z > threshold) against (target > 0.5).
        """
        if z.shape[1] == 1:
            hits = (z[:, 0] > threshold) == (target.reshape(-1) > 0.5)
        elif target.ndim == 1:
            hits = z.argmax(axis=1) == target
        else:
            hits = z.argmax(axis=1) == target.argmax(axis=1)
        acc[1] += hits.sum()

    def gather_rows(self, src, perm, cursor, out) -> None:
        """out[i] <- src[perm[cursor + i]] for i < len(out); uint8 pixels become float32 / 255."""
        n = out.shape[0]
        start = int(cursor[0])
        idx = perm[start:start + n]
        if src.dtype == np.uint8:
            self.xp.multiply(src[idx], np.float32(1 / 255), out=out)
        else:
            self.xp.take(src, idx, axis=0, out=out)

    def advance(self, cursor, n: int, hyper=None, acc=None) -> None:
        """End of a step: move the cursor by n rows; with ``hyper`` count one optimizer iteration;
        with ``acc`` count the step in acc[2] if the running loss acc[0] is still finite."""
        cursor += n
        if hyper is not None:
            hyper[HYPER["iterations"]] += 1
        if acc is not None and self.xp.isfinite(acc[0]):
            acc[2] += 1

    def sgd_update(self, params, grads, velocity, hyper, nesterov: bool = False) -> None:
        """Keras SGD over one flat buffer. ``velocity`` is None without momentum.

        v <- m v - lr g;  w <- w + v  (Nesterov: w <- w + m v - lr g).
        ``grads`` is scratch afterwards.
        """
        from .optimizer_ops import decay_weights
        decay_weights(params, hyper)
        lr = hyper[HYPER["lr"]]
        grads *= lr
        if velocity is None:
            params -= grads
            return
        m = hyper[HYPER["momentum"]]
        velocity *= m
        velocity -= grads
        if nesterov:
            params -= grads
            params += m * velocity
        else:
            params += velocity

    def adam_update(self, params, grads, m, v, hyper) -> None:
        """Keras Adam over one flat buffer, bias-corrected with t = iterations + 1."""
        from .optimizer_ops import decay_weights
        decay_weights(params, hyper)
        xp = self.xp
        h = hyper
        lr, b1, b2, eps = h[HYPER["lr"]], h[HYPER["beta_1"]], h[HYPER["beta_2"]], h[HYPER["epsilon"]]
        t = h[HYPER["iterations"]] + 1
        alpha = lr * xp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m *= b1
        m += (1 - b1) * grads
        v *= b2
        grads *= grads
        grads *= 1 - b2
        v += grads
        params -= alpha * m / (xp.sqrt(v) + eps)
