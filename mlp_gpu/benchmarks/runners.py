"""One session class per implementation: set up a workload once, then train it one epoch at a time.

The suite calls ``epoch()`` on every session in turn, round after round, so a machine whose speed
drifts (shared hosts do) slows every implementation alike. Every session sees the same uint8 data
already in memory and the same SGD (lr 0.01) on the same net; ``epoch()`` returns the seconds of
that epoch alone (setup excluded), GPU timings synchronized with the device at both ends.
"""
from __future__ import annotations

import os
import time

import numpy as np

from . import handwritten
from .. import BatchNormalization, Callback, Dense, Dropout, Input, SGD, Sequential, get_backend, optimizers
from ..backend import available_backends

LR = 0.01


class Skip(Exception):
    """This implementation cannot run here (not importable, no device); the message says why."""


class MlpGpuSession:
    """Our Sequential on a backend; each epoch is one ``fit`` call continuing from the last."""

    def __init__(self, workload, data, backend_name, options):
        if backend_name == "cupy" and available_backends()["cupy"] is not None:
            raise Skip(available_backends()["cupy"])
        self.backend = backend = get_backend(backend_name, **options)
        sizes = workload.sizes
        if workload.net == "toolbox":
            hidden = [layer for u in sizes[1:-1] for layer in (Dense(u, "relu"), BatchNormalization(), Dropout(0.2))]
            optimizer = optimizers.Nadam()
        else:
            hidden, optimizer = [Dense(u, "relu") for u in sizes[1:-1]], SGD(LR)
        self.model = Sequential([Input((sizes[0],))] + hidden + [Dense(sizes[-1], "softmax")], backend=backend)
        self.model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"], seed=0)
        self.workload, self.data = workload, data

        class Timer(Callback):  # times the epoch only: fit's input checks and upload stay outside
            def on_epoch_begin(self, epoch, logs=None):
                backend.synchronize()
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                backend.synchronize()
                self.seconds = time.perf_counter() - self.t0

        self.timer = Timer()

    def epoch(self) -> float:
        done = self.model.epochs_done
        self.model.fit(self.data["x"], self.data["y"], batch_size=self.workload.batch, epochs=done + 1,
                       initial_epoch=done, verbose=0, seed=0, callbacks=[self.timer])
        return self.timer.seconds

    def result(self) -> dict:
        out = {"device_bytes": self.backend.memory_bytes() or None}
        if self.workload.accuracy:
            out["test_accuracy"] = self.model.evaluate(self.data["x_test"], self.data["y_test"], verbose=0)[1]
            out["val_accuracy"] = self.model.evaluate(self.data["x_val"], self.data["y_val"], verbose=0)[1]
        return out


class HandwrittenSession:
    """The minimal hand-written NumPy loop (handwritten.py), data scaled to float32 once."""

    def __init__(self, workload, data):
        self.workload, self.data = workload, data
        self.x = data["x"].astype(np.float32) / np.float32(255)
        self.y = data["y"].astype(np.int64)
        self.rng = np.random.default_rng(0)
        self.params = handwritten.init(list(workload.sizes), self.rng)

    def epoch(self) -> float:
        t0 = time.perf_counter()
        handwritten.train_epoch(self.params, self.x, self.y, LR, self.workload.batch, self.rng)
        return time.perf_counter() - t0

    def result(self) -> dict:
        if not self.workload.accuracy:
            return {}
        x_test = self.data["x_test"].astype(np.float32) / 255
        return {"test_accuracy": handwritten.accuracy(self.params, x_test, self.data["y_test"])}


class TorchSession:
    """PyTorch eager: the uint8 data resident on the device, randperm batches, one loss read per epoch."""

    def __init__(self, workload, data, device):
        try:
            import torch
        except ImportError as exc:
            raise Skip(f"torch not importable ({exc})") from None
        if device == "cuda" and not torch.cuda.is_available():
            raise Skip("torch has no CUDA device")
        self.torch, self.workload, self.data, self.device = torch, workload, data, device
        torch.manual_seed(0)
        self.dev = torch.device(device)
        self.x = torch.from_numpy(np.array(data["x"])).to(self.dev)
        self.y = torch.from_numpy(data["y"].astype(np.int64)).to(self.dev)
        sizes, layers = workload.sizes, []
        toolbox = workload.net == "toolbox"
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers += [torch.nn.Linear(a, b)]
            if i < len(sizes) - 2:  # Keras' BatchNormalization defaults in PyTorch's terms
                layers += [torch.nn.ReLU()] + ([torch.nn.BatchNorm1d(b, eps=1e-3, momentum=0.01),
                                                torch.nn.Dropout(0.2)] if toolbox else [])
        self.net = torch.nn.Sequential(*layers).to(self.dev)
        self.opt = torch.optim.NAdam(self.net.parameters(), lr=0.001, eps=1e-7) if toolbox else \
            torch.optim.SGD(self.net.parameters(), lr=LR)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def _sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def epoch(self) -> float:
        torch, n, batch = self.torch, self.x.shape[0], self.workload.batch
        self._sync()
        t0 = time.perf_counter()
        self.net.train()
        perm = torch.randperm(n, device=self.dev)
        total = torch.zeros((), device=self.dev)
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            loss = self.loss_fn(self.net(self.x[idx].float() / 255), self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += loss.detach() * len(idx)
        float(total)  # one read per epoch, as mlp_gpu does
        self._sync()
        return time.perf_counter() - t0

    def result(self) -> dict:
        torch = self.torch
        out = {"torch": torch.__version__}
        if self.device == "cuda":
            out["device_bytes"] = int(torch.cuda.memory_allocated())
        if self.workload.accuracy:
            self.net.eval()
            for split in ("test", "val"):
                with torch.no_grad():
                    xt = torch.from_numpy(np.array(self.data[f"x_{split}"])).to(self.dev).float() / 255
                    pred = self.net(xt).argmax(dim=1).cpu().numpy()
                out[f"{split}_accuracy"] = float(np.mean(pred == self.data[f"y_{split}"]))
        return out


class JaxSession:
    """JAX on the CPU, the epoch as one jitted ``lax.scan`` over the full batches (and one jitted step for a
    shorter last batch): uint8 data on the device, a device-side permutation per epoch, one loss read."""

    def __init__(self, workload, data):
        try:
            import jax
            import jax.numpy as jnp
        except ImportError as exc:
            raise Skip(f"jax not importable ({exc}); pip install 'mlp_gpu[bench]' for this peer") from None
        if workload.net != "mlp":
            raise Skip("the JAX peer trains the plain Dense net only")
        self.jax, self.workload, self.data = jax, workload, data
        cpu = jax.devices("cpu")[0]
        self.x = jax.device_put(np.asarray(data["x"]), cpu)
        self.y = jax.device_put(data["y"].astype(np.int32), cpu)
        key = jax.random.PRNGKey(0)
        self.params = []
        for fan_in, fan_out in zip(workload.sizes[:-1], workload.sizes[1:]):  # Glorot uniform, zero biases
            key, sub = jax.random.split(key)
            limit = float(np.sqrt(6.0 / (fan_in + fan_out)))
            self.params.append((jax.random.uniform(sub, (fan_in, fan_out), jnp.float32, -limit, limit),
                                jnp.zeros(fan_out, jnp.float32)))
        self.key, self.count = key, 0
        batch, rows = workload.batch, len(data["y"])
        full, rest = divmod(rows, batch)

        def logits(params, xb):
            h = xb
            for i, (w, b) in enumerate(params):
                h = h @ w + b
                if i < len(params) - 1:
                    h = jax.nn.relu(h)
            return h

        def loss(params, xb, yb):  # the batch's summed cross-entropy; the gradient step divides by its rows
            z = jax.nn.log_softmax(logits(params, xb))
            return -jnp.take_along_axis(z, yb[:, None], axis=1).sum()

        def step(params, idx):
            xb, yb = self.x[idx].astype(jnp.float32) / 255, self.y[idx]
            total, grads = jax.value_and_grad(loss)(params, xb, yb)
            scale = LR / idx.shape[0]
            return jax.tree_util.tree_map(lambda p, g: p - scale * g, params, grads), total

        def epoch(params, key):
            order = jax.random.permutation(key, rows)
            params, totals = jax.lax.scan(step, params, order[:full * batch].reshape(full, batch))
            total = totals.sum()
            if rest:
                params, last = step(params, order[full * batch:])
                total = total + last
            return params, total / rows

        self._epoch = jax.jit(epoch)
        self._logits = jax.jit(logits)

    def epoch(self) -> float:
        key = self.jax.random.fold_in(self.key, self.count)
        self.count += 1
        start = time.perf_counter()
        self.params, loss = self._epoch(self.params, key)
        float(loss)  # one read per epoch, as mlp_gpu does
        return time.perf_counter() - start

    def result(self) -> dict:
        out = {"jax": self.jax.__version__}
        if self.workload.accuracy:
            for split in ("test", "val"):
                xt = np.asarray(self.data[f"x_{split}"], np.float32) / np.float32(255)
                pred = np.asarray(self._logits(self.params, xt)).argmax(axis=1)
                out[f"{split}_accuracy"] = float(np.mean(pred == self.data[f"y_{split}"]))
        return out


class KerasSession:
    """Keras 3 on its PyTorch backend, on the CPU (the backend is chosen before Keras is imported)."""

    def __init__(self, workload, data):
        os.environ.setdefault("KERAS_BACKEND", "torch")
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # this peer is the CPU one
        try:
            import keras
        except Exception as exc:  # ImportError, or a missing backend raising anything
            raise Skip(f"keras not importable ({type(exc).__name__}: {exc})") from None
        self.keras, self.workload, self.data = keras, workload, data
        sizes, L = workload.sizes, keras.layers
        toolbox = workload.net == "toolbox"
        hidden = [layer for u in sizes[1:-1] for layer in
                  ([L.Dense(u, activation="relu")] + ([L.BatchNormalization(), L.Dropout(0.2)] if toolbox else []))]
        self.model = keras.Sequential([keras.Input((sizes[0],))] + hidden
                                      + [L.Dense(sizes[-1], activation="softmax")])
        optimizer = keras.optimizers.Nadam() if toolbox else keras.optimizers.SGD(LR)
        self.model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        self.x = data["x"].astype(np.float32) / np.float32(255)
        times = self.times = []

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.t0)

        self.timer = Timer()

    def epoch(self) -> float:
        self.model.fit(self.x, self.data["y"], batch_size=self.workload.batch, epochs=1, verbose=0,
                       callbacks=[self.timer])
        return self.times[-1]

    def result(self) -> dict:
        out = {"keras": self.keras.__version__, "keras_backend": self.keras.backend.backend()}
        if self.workload.accuracy:
            for split in ("test", "val"):
                xt = self.data[f"x_{split}"].astype(np.float32) / np.float32(255)
                out[f"{split}_accuracy"] = float(self.model.evaluate(xt, self.data[f"y_{split}"], verbose=0)[1])
        return out


RUNNERS = {
    "numpy": lambda w, d: MlpGpuSession(w, d, "numpy", {}),
    "cupy_eager": lambda w, d: MlpGpuSession(w, d, "cupy", {"graph": False}),
    "cupy_graph": lambda w, d: MlpGpuSession(w, d, "cupy", {"graph": True}),
    "handwritten_numpy": HandwrittenSession,
    "torch_cpu": lambda w, d: TorchSession(w, d, "cpu"),
    "torch_cuda": lambda w, d: TorchSession(w, d, "cuda"),
    "keras_cpu": KerasSession,
    "jax_cpu": JaxSession,
}
