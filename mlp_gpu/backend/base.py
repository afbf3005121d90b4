"""The backend interface: what every backend provides, documented once.

Every fused op works in place on preallocated buffers (nothing allocates per
step on a GPU backend). The ops are abstract here: the NumPy reference (and test
oracle) is in ``numpy/``, the kernel launches in ``cuda/ops.py`` and ``cuda/layer_ops.py``, so a
backend that forgets an op fails when it is made, not by silently running NumPy.

Layouts (row-major, one sample a row):
    z, y, dz, dy : (N, K) float32     activations and their gradients
    b, db        : (K,)   float32     bias and its gradient
    target       : (N,) int32 labels, or (N, K) float32 targets
    acc          : (ACC_SIZE,) float64  [sum of per-row losses, correct count, steps whose running loss
                                      was still finite] -- the last names the step a run diverged at;
                                      slots in ``ACC``
    cursor       : (1,)   int64       position of the batch in the permutation
    hyper        : (HYPER_SIZE,) float32  optimizer scalars, slots in ``HYPER``
The slot numbers and activation codes are shared with the kernels: see ``shared_constants``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from . import staging
from .shared_constants import ACC, ACC_SIZE, ACTIVATIONS, HYPER, HYPER_SIZE, METRIC_KINDS  # noqa: F401 -- re-exported

LOSS_KINDS = ("softmax_xent_sparse", "softmax_xent", "sigmoid_bce", "mse")
# A data set stays resident on the device while it takes at most this share of the free memory
# (``Backend.free_memory``); a larger one is streamed in chunks.
RESIDENT_SHARE = 0.5


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


class Backend(ABC):
    """Array module, memory and fused ops for one device.

    Memory and transfers are written once against ``xp``; the ops below them are
    abstract. ``FUSED_OPS`` lists them for the test that every backend has its own.
    """

    name = "abstract"
    xp = np
    chosen_because = "constructed directly"  # get_backend says what asked for it, and why auto chose it

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
        return None

    def describe(self) -> dict:
        return {"backend": self.name, "device": "cpu", "numpy": np.__version__}

    def memory_bytes(self) -> int:
        """Bytes this backend holds on its device (0 on the CPU)."""
        return 0

    # ---- data placement -------------------------------------------------------
    device_is_host = True  # the CPU computes on host memory: an array already in RAM is resident

    def free_memory(self) -> int:
        """Bytes a data set could still take where this backend computes."""
        return staging.host_free_bytes()

    def keeps_resident(self, nbytes: int, in_host_memory: bool) -> bool:
        """Whether a data set of ``nbytes`` stays resident (else it is streamed in chunks)."""
        if in_host_memory and self.device_is_host:
            return True
        return nbytes <= RESIDENT_SHARE * self.free_memory()

    def make_stage(self, rows, cols, x_dtype, y_shape, y_dtype):
        """Buffers for one part of a streamed data set (see ``staging``); y_dtype None: no targets."""
        return staging.HostStage(self, rows, cols, x_dtype, y_shape, y_dtype)

    def make_runner(self, step, rows: int, max_steps: int | None = None, split=None, **parts) -> "StepRunner":
        """Return a StepRunner for ``step()``; GPU backends may capture blocks of steps as graphs.

        ``max_steps`` caps the steps one call may run (1 when callbacks read every step). ``parts``
        (model, data, acc) let a backend build its own fused step instead of ``step``. ``split``:
        ``(before, collective, after)``, the same step in three parts around a gradient all-reduce that
        a graph may not be able to hold; a GPU backend then replays two graphs around it.
        """
        return StepRunner(step)

    # ---- collectives (mlp_gpu.distributed) --------------------------------------------
    def allreduce(self, comm, buf, op: str = "sum", scale=None) -> None:
        """buf <- op over the ranks of (scale * buf), in place, through the communicator ``comm``."""
        if scale is not None:
            buf *= buf.dtype.type(scale)
        comm.allreduce(buf, op)

    def broadcast(self, comm, buf, root: int = 0) -> None:
        """buf <- rank root's buf, in place."""
        comm.broadcast(buf, root)

    def collective_in_graph(self, comm) -> bool:
        """Whether a captured step may hold ``comm``'s all-reduce (no graphs here)."""
        return False

    # ---- dense algebra ------------------------------------------------------
    @abstractmethod
    def matmul(self, a, b, out, trans_a: bool = False, trans_b: bool = False):
        """out <- op(a) @ op(b), where op transposes when asked; returns out."""
        raise NotImplementedError

    # ---- fused ops ----------------------------------------------------------
    @abstractmethod
    def bias_act(self, z, b, act: str) -> None:
        """z <- act(z + b), in place; softmax is taken per row."""
        raise NotImplementedError

    @abstractmethod
    def act_backward(self, dy, y, act: str) -> None:
        """dy <- dy * act'(.) in place, expressed through the activation's output y, or through its input
        for an entry marked ``from_input`` (gelu, silu, mish, hard_silu: the caller passes the input)."""
        raise NotImplementedError

    @abstractmethod
    def bias_grad(self, dz, db) -> None:
        """db <- column sums of dz."""
        raise NotImplementedError

    @abstractmethod
    def loss_grad(self, kind: str, z, target, dz, acc, count: bool = False, threshold: float = 0.0) -> None:
        """dz <- d(mean row loss)/dz; acc[loss_sum] += sum of row losses; with ``count`` also
        acc[correct] += rows predicted right.

        ``softmax_xent*`` and ``sigmoid_bce`` take logits z (the activation is
        fused into the loss for numerical stability); ``mse`` takes outputs.
        Rows predicted right: with several columns argmax(z) against the label
        (or the argmax of a one-hot target); with one column (z > threshold)
        against (target > 0.5).
        """
        raise NotImplementedError

    @abstractmethod
    def metric_sum(self, kind: str, z, target, acc, slot: int, activation: str = "linear",
                   threshold: float = 0.5) -> None:
        """acc[slot] += sum over rows of the row mean of f(p, t), p = activation(z) taken per row.

        ``z`` (N, K) holds the last layer's outputs, or its pre-activation when the loss fused the
        activation (then ``activation`` is "sigmoid" or "softmax"); ``target`` (N, K) floats. f by
        ``kind`` (METRIC_KINDS): abs_error |p - t|, squared_error (p - t)^2, binary_hits t == (p > threshold).
        """
        raise NotImplementedError

    @abstractmethod
    def run_traced(self, program, arrays: dict, acc=None, slot: int = 0, acc_scale: float = 1.0,
                   params: dict | None = None) -> None:
        """Run a traced program (``mlp_gpu.tracing.Program``: a user's loss, metric or layer) on (N, k) arrays.

        ``arrays`` maps the program's input names to arrays and its output names to buffers it fills
        (a loss: t, z -> dz); with a row output, acc[slot] += acc_scale * sum over rows of it.
        ``params``: the program's float scalars (a loss's grad_scale). One kernel on a GPU backend.
        """
        raise NotImplementedError

    @abstractmethod
    def gather_rows(self, src, perm, cursor, out) -> None:
        """out[i] <- src[perm[cursor + i]] for i < len(out); uint8 pixels become float32 / 255."""
        raise NotImplementedError

    @abstractmethod
    def advance(self, cursor, n: int, hyper=None, acc=None) -> None:
        """End of a step: move the cursor by n rows; with ``hyper`` count one optimizer iteration;
        with ``acc`` count the step in acc[finite_steps] if the running loss acc[loss_sum] is still finite."""
        raise NotImplementedError

    @abstractmethod
    def sgd_update(self, params, grads, velocity, hyper, nesterov: bool = False) -> None:
        """Keras SGD over one flat buffer. ``velocity`` is None without momentum.

        v <- m v - lr g;  w <- w + v  (Nesterov: w <- w + m v - lr g).
        ``grads`` is scratch afterwards.
        """
        raise NotImplementedError

    @abstractmethod
    def adam_update(self, params, grads, m, v, hyper) -> None:
        """Keras Adam over one flat buffer, bias-corrected with t = iterations + 1. ``grads`` is scratch after."""
        raise NotImplementedError


    # ---- the toolbox: the layers and optimizers beyond Dense and SGD/Adam (numpy/layer_ops.py and
    # numpy/optimizer_ops.py hold the references, cuda/layer_ops.py the launches) -------------------
    @abstractmethod
    def dropout(self, x, out, mask, counter, seed: int, rate: float) -> None:
        """mask <- (kept ? 1/(1-rate) : 0) from the Philox draw counter[0]; out <- x * mask."""

    @abstractmethod
    def dropout_backward(self, dy, mask, dx) -> None:
        """dx <- dy * mask."""

    @abstractmethod
    def batchnorm_train(self, x, out, gamma, beta, moving_mean, moving_var, mean, inv_std, momentum,
                        epsilon) -> None:
        """Batch statistics into mean and inv_std; out <- normalized x * gamma + beta; the moving statistics
        <- moving * momentum + batch * (1 - momentum)."""

    @abstractmethod
    def batchnorm_infer(self, x, out, gamma, beta, moving_mean, moving_var, epsilon) -> None:
        """out <- (x - moving_mean) / sqrt(moving_var + eps) * gamma + beta."""

    @abstractmethod
    def batchnorm_backward(self, x, dy, gamma, mean, inv_std, dgamma, dbeta, dx) -> None:
        """dgamma = sum(dy * xhat), dbeta = sum(dy), dx (each only when not None)."""

    @abstractmethod
    def normalize(self, x, out, mean, variance, invert: bool = False) -> None:
        """out <- (x - mean) / max(sqrt(variance), 1e-7), or the inverse; mean None: the scaling alone."""

    @abstractmethod
    def regularize(self, w, g, l1: float, l2: float, acc, rows: int) -> None:
        """g += l1 sign(w) + 2 l2 w; acc[0] += rows * (l1 sum|w| + l2 sum w^2) (each when not None)."""

    @abstractmethod
    def optimizer_prepare(self, hyper, table, nadam: bool) -> None:
        """Start of an update: hyper[lr] <- the schedule's rate; Nadam's momentum product advanced."""

    @abstractmethod
    def clip_by_value(self, g, clipvalue: float) -> None:
        """g <- clip(g, -clipvalue, clipvalue)."""

    @abstractmethod
    def clip_by_norm(self, g, segments, clipnorm: float) -> None:
        """Each segment of g rescaled to a norm of at most clipnorm."""

    @abstractmethod
    def rmsprop_update(self, w, g, velocity, momentum, average, hyper) -> None:
        """Keras RMSprop (centered with ``average``, with momentum through ``velocity``)."""

    @abstractmethod
    def adagrad_update(self, w, g, accumulator, hyper) -> None:
        """Keras Adagrad."""

    @abstractmethod
    def nadam_update(self, w, g, m, v, hyper) -> None:
        """Keras Nadam, hyper[u_product] already advanced by optimizer_prepare."""

    @abstractmethod
    def accumulate_gradients(self, g, accumulator, hyper) -> None:
        """Keras' gradient accumulation (hyper[accumulation] = n): a step that only accumulates adds g to the
        accumulator (the updates then skip it); an update step makes g <- (g + accumulator) / n, accumulator <- 0."""

    @abstractmethod
    def ema_update(self, w, average, hyper, momentum: float, frequency: int) -> None:
        """Keras' use_ema after an update: average <- mu average + (1 - mu) w (mu = 0 on update 0), and w <- average
        every ``frequency`` updates (0: never)."""

    @abstractmethod
    def optimizer_update(self, kernel: str, reference, w, g, state, hyper) -> None:
        """One update by an optimizer that carries its own rule (an optimizers/ file): after the weight decay,
        the NumPy backend calls ``reference(w, g, state, hyper)``, the rule on arrays; a CUDA backend launches
        ``kernel`` of kernels/optimizer.cu as (w, g, state, hyper, size), state the (slots, size) buffer."""


FUSED_OPS = tuple(sorted(Backend.__abstractmethods__))
