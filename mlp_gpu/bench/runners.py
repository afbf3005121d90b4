"""One function per implementation: train a workload for warm-up + repeats epochs, time each epoch.

Every runner sees the same uint8 data already in memory and the same SGD (lr 0.01) on the same
net; GPU timings synchronize the device at both ends of an epoch.
"""
from __future__ import annotations

import os
import time

import numpy as np

from . import handwritten

LR = 0.01


class Skip(Exception):
    """This implementation cannot run here (not importable, no device); the message says why."""


def _mlp_gpu(backend_name, options):
    def run(workload, data, epochs):
        from .. import SGD, Callback, Dense, Input, Sequential, get_backend
        from ..backend import available_backends

        if backend_name == "cupy" and available_backends()["cupy"] is not None:
            raise Skip(available_backends()["cupy"])
        backend = get_backend(backend_name, **options)
        sizes = workload.sizes
        model = Sequential([Input((sizes[0],))] + [Dense(u, "relu") for u in sizes[1:-1]]
                           + [Dense(sizes[-1], "softmax")], backend=backend)
        model.compile(optimizer=SGD(LR), metrics=["accuracy"], seed=0)
        times = []

        class Timer(Callback):
            def on_epoch_begin(self, epoch, logs=None):
                backend.synchronize()
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                backend.synchronize()
                times.append(time.perf_counter() - self.t0)

        x, y = data["x"], data["y"]
        model.fit(x, y, batch_size=workload.batch, epochs=epochs, verbose=0, seed=0, callbacks=[Timer()])
        out = {"epoch_s": times, "device_bytes": backend.memory_bytes() or None}
        if workload.accuracy:
            out["test_accuracy"] = model.evaluate(data["x_test"], data["y_test"])[1]
        return out
    return run


def handwritten_numpy(workload, data, epochs):
    x = data["x"].astype(np.float32) / np.float32(255)  # converted once, outside the timing
    y = data["y"].astype(np.int64)
    rng = np.random.default_rng(0)
    params = handwritten.init(list(workload.sizes), rng)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        handwritten.train_epoch(params, x, y, LR, workload.batch, rng)
        times.append(time.perf_counter() - t0)
    out = {"epoch_s": times}
    if workload.accuracy:
        out["test_accuracy"] = handwritten.accuracy(params, data["x_test"].astype(np.float32) / 255, data["y_test"])
    return out


def _torch(device):
    def run(workload, data, epochs):
        try:
            import torch
        except ImportError as exc:
            raise Skip(f"torch not importable ({exc})") from None
        if device == "cuda" and not torch.cuda.is_available():
            raise Skip("torch has no CUDA device")
        torch.manual_seed(0)
        dev = torch.device(device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        x = torch.from_numpy(np.array(data["x"])).to(dev)  # uint8 resident, as mlp_gpu keeps it
        y = torch.from_numpy(data["y"].astype(np.int64)).to(dev)
        layers = []
        for i, (a, b) in enumerate(zip(workload.sizes[:-1], workload.sizes[1:])):
            layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(workload.sizes) - 2 else [])
        net = torch.nn.Sequential(*layers).to(dev)
        opt = torch.optim.SGD(net.parameters(), lr=LR)
        loss_fn = torch.nn.CrossEntropyLoss()
        n, times = x.shape[0], []
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(epochs):
            sync()
            t0 = time.perf_counter()
            perm = torch.randperm(n, device=dev)
            total = torch.zeros((), device=dev)
            for start in range(0, n, workload.batch):
                idx = perm[start:start + workload.batch]
                loss = loss_fn(net(x[idx].float() / 255), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * len(idx)
            float(total)  # one read per epoch, as mlp_gpu does
            sync()
            times.append(time.perf_counter() - t0)
        out = {"epoch_s": times, "torch": torch.__version__}
        if device == "cuda":
            out["device_bytes"] = int(torch.cuda.max_memory_allocated())
        if workload.accuracy:
            with torch.no_grad():
                xt = torch.from_numpy(np.array(data["x_test"])).to(dev).float() / 255
                pred = net(xt).argmax(dim=1).cpu().numpy()
            out["test_accuracy"] = float(np.mean(pred == data["y_test"]))
        return out
    return run


def keras_cpu(workload, data, epochs):
    """Keras 3 on its PyTorch backend, on the CPU (the backend must be chosen before Keras is imported)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # this peer is the CPU one
    try:
        import keras
    except Exception as exc:  # ImportError, or a missing backend raising anything
        raise Skip(f"keras not importable ({type(exc).__name__}: {exc})") from None
    sizes = workload.sizes
    model = keras.Sequential([keras.Input((sizes[0],))] + [keras.layers.Dense(u, activation="relu")
                                                           for u in sizes[1:-1]]
                             + [keras.layers.Dense(sizes[-1], activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    x = data["x"].astype(np.float32) / np.float32(255)
    model.fit(x, data["y"], batch_size=workload.batch, epochs=epochs, verbose=0, callbacks=[Timer()])
    out = {"epoch_s": times, "keras": keras.__version__, "keras_backend": keras.backend.backend()}
    if workload.accuracy:
        xt = data["x_test"].astype(np.float32) / np.float32(255)
        out["test_accuracy"] = float(model.evaluate(xt, data["y_test"], verbose=0)[1])
    return out


RUNNERS = {
    "numpy": _mlp_gpu("numpy", {}),
    "cupy_eager": _mlp_gpu("cupy", {"graph": False}),
    "cupy_graph": _mlp_gpu("cupy", {"graph": True}),
    "handwritten_numpy": handwritten_numpy,
    "torch_cpu": _torch("cpu"),
    "torch_cuda": _torch("cuda"),
    "keras_cpu": keras_cpu,
}
