"""The CuPy backend on a real GPU: parity with NumPy, eager against graph replay, files.
Skipped without a GPU; `make gpu-check` runs them on one."""
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import SGD, Adam, Dense, Input, Sequential
from mlp_gpu.backend import get_backend

from ...conftest import requires_gpu

pytestmark = [pytest.mark.gpu, requires_gpu]


def data(rows=1000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, rows).astype(np.int32)
    x = rng.integers(0, 256, (rows, 784)).astype(np.uint8)
    x[np.arange(rows), y * 70] = 255  # a learnable signal
    return x, y


def reference_model(backend, optimizer=None):
    model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                       backend=backend)
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=optimizer or SGD(0.01), metrics=["accuracy"], seed=0)
    return model


def test_auto_picks_cupy():
    assert get_backend("auto").name == "cupy"


@pytest.mark.parametrize("opt", [lambda: SGD(0.01), lambda: Adam(0.001)], ids=["sgd", "adam"])
def test_graph_replay_equals_eager_bit_for_bit(opt):
    """Same kernels either way (our GEMM), so replay must reproduce eager weights exactly."""
    x, y = data(1000)  # 32 steps, the last of 8 rows: both graphs are exercised
    weights = []
    for graph in (False, True):
        model = reference_model(get_backend("cupy", graph=graph, gemm="kernel"), opt())
        model.fit(x, y, batch_size=32, epochs=2, seed=1, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("graph", [False, True])
def test_training_matches_numpy(graph):
    x, y = data(1000)
    ref = reference_model("numpy")
    gpu = reference_model(get_backend("cupy", graph=graph))
    h_ref = ref.fit(x, y, batch_size=32, epochs=2, seed=1, verbose=0, validation_data=(x[:200], y[:200]))
    h_gpu = gpu.fit(x, y, batch_size=32, epochs=2, seed=1, verbose=0, validation_data=(x[:200], y[:200]))
    for a, b in zip(ref.get_weights(), gpu.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(h_gpu.history["loss"], h_ref.history["loss"], rtol=1e-4)
    assert gpu.optimizer.iterations == ref.optimizer.iterations == 64


def test_learning_rate_change_reaches_captured_graph():
    """The graph is captured once per fit; a scheduler's new rate must still reach the replays."""
    x, y = data(256)
    model = reference_model(get_backend("cupy", graph=True))
    after_first = []

    class Snapshot(mlp_gpu.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                after_first.extend(self.model.get_weights())

    schedule = mlp_gpu.callbacks.LearningRateScheduler(lambda epoch, lr: 0.05 if epoch == 0 else 1e-30)
    model.fit(x, y, batch_size=32, epochs=2, seed=1, verbose=0, callbacks=[schedule, Snapshot()])
    for a, b in zip(after_first, model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # epoch 2 ran with the frozen rate
    assert model.optimizer.iterations == 16


def test_save_on_gpu_load_on_cpu(tmp_path):
    x, y = data(300)
    model = reference_model("cupy")
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.h5")
    cpu = mlp_gpu.load_model(tmp_path / "m.h5", backend="numpy")
    for a, b in zip(model.get_weights(), cpu.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(cpu.predict(x), model.predict(x), rtol=1e-4, atol=1e-6)


def test_device_memory_is_preallocated_not_per_step():
    x, y = data(2000)
    backend = get_backend("cupy", graph=False)
    model = reference_model(backend)
    model.fit(x, y, batch_size=32, epochs=1, seed=0, verbose=0)
    pool = backend.xp.get_default_memory_pool()
    used = pool.used_bytes()
    model.fit(x, y, batch_size=32, epochs=1, seed=0, verbose=0)
    assert pool.used_bytes() <= used + 1024  # the same buffers again, nothing growing per step


def test_allocation_beyond_device_memory_names_the_sizes():
    from mlp_gpu.backend.base import DeviceMemoryError

    backend = get_backend("cupy")
    with pytest.raises(DeviceMemoryError, match=r"shape \(1099511627776,\) float32 needs .* MiB free of"):
        backend.empty((1 << 40,))


def test_clear_session_hands_cached_device_memory_back():
    import cupy

    x, y = data()
    model = reference_model(get_backend("cupy"))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, seed=0)
    pool = cupy.get_default_memory_pool()
    held = pool.used_bytes()
    del model
    mlp_gpu.utils.clear_session()
    assert pool.used_bytes() < held  # the model's buffers went
    assert pool.total_bytes() == pool.used_bytes()  # and no freed block stays cached
