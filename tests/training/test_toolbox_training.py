"""Training with the toolbox (BatchNormalization, Dropout, Normalization, regularizers, the newer
optimizers, clipping, schedules) through the CuPy backend's launches run on the CPU by the host
harness, against the NumPy backend from the same seed: the same masks, statistics and weights."""
import numpy as np
import pytest

from mlp_gpu import BatchNormalization, Dense, Dropout, Input, Normalization, Sequential, optimizers
from mlp_gpu.optimizers import schedules
from mlp_gpu.callbacks.learning_rate import ReduceLROnPlateau

from ..conftest import blobs, requires_gpu
from ..harness.host_ops import HostCudaOps, compiler

pytestmark = pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")


def toolbox_net(x):
    norm = Normalization()
    norm.adapt(x)
    return [Input((6,)), norm, Dense(9, "relu", kernel_regularizer="l2"), BatchNormalization(), Dropout(0.2),
            Dense(7, "tanh", bias_regularizer="l1"), BatchNormalization(center=False), Dropout(0.3, seed=9),
            Dense(3, "softmax")]


OPTIMIZERS = {
    "nadam-exponential": lambda: optimizers.Nadam(schedules.ExponentialDecay(0.01, 3, 0.5)),
    "adamw-clipnorm": lambda: optimizers.AdamW(0.01, clipnorm=0.5),
    "rmsprop-centered-global-clip": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True,
                                                                global_clipnorm=1.0),
    "adagrad-cosine-clipvalue": lambda: optimizers.Adagrad(
        schedules.CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=3), clipvalue=0.1),
    "sgd-piecewise": lambda: optimizers.SGD(schedules.PiecewiseConstantDecay([4], [0.1, 0.01]), momentum=0.9),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_toolbox_training_matches_numpy(name):
    x, y = blobs(n=45, features=6)
    models = []
    for backend in ("numpy", HostCudaOps()):
        model = Sequential(toolbox_net(x), backend=backend)
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=OPTIMIZERS[name](), metrics=["accuracy"], seed=1)
        models.append(model)
    histories = [m.fit(x, y, batch_size=8, epochs=2, seed=4, verbose=0, validation_data=(x[:10], y[:10]))
                 for m in models]
    ref, gpu_logic = models
    for a, b in zip(ref.get_weights(), gpu_logic.get_weights()):  # with the BN moving statistics
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    for key in histories[0].history:
        np.testing.assert_allclose(histories[1].history[key], histories[0].history[key], rtol=1e-4)
    np.testing.assert_allclose(gpu_logic.optimizer.state, ref.optimizer.state, rtol=2e-4, atol=1e-6)
    assert int(gpu_logic.rng_counter[0]) == int(ref.rng_counter[0]) == 12  # one draw per training step
    np.testing.assert_allclose(gpu_logic.predict(x), ref.predict(x), rtol=1e-4, atol=1e-6)


def test_reduce_lr_on_plateau_in_training():
    x, y = blobs(n=40, features=6)
    model = Sequential([Input((6,)), Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=optimizers.SGD(1e-9), seed=0)  # too small to improve anything
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1.0)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[cb], seed=0)
    assert model.optimizer.learning_rate == pytest.approx(2.5e-10)  # halved after epochs 2 and 3


def test_toolbox_bench_cells_run_and_report_validation_accuracy():
    """The `--matrix toolbox` cells on 300 rows (Keras' cell runs in `make bench-toolbox` only: importing it
    here would cost more than the rest of this file): each builds the net and reports val accuracy."""
    from mlp_gpu.benchmarks import _run_cells, load_data
    from mlp_gpu.benchmarks.report import one_line
    from mlp_gpu.benchmarks.workloads import Matrix, Workload

    spec = Matrix("toolbox", [Workload("toolbox", net="toolbox", rows=300, accuracy=True,
                                       impls=("numpy", "torch_cpu"))])
    _, data = load_data()
    cells = _run_cells(spec, data, 1, {"cpu_sgemm_gflops": 1.0, "gpu_sgemm_gflops": None}, lambda *_: None)
    ran = [c for c in cells if "skipped" not in c]
    assert ran and ran[0]["impl"] == "numpy"
    for c in ran:
        assert 0.0 <= c["val_accuracy"] <= 1.0 and "val acc" in one_line(c)
    assert ran[0]["val_accuracy"] > 0.3  # 300 rows, 2 epochs: well above chance (0.1)


@pytest.mark.gpu
@requires_gpu
def test_graph_replay_equals_eager_and_numpy_on_a_gpu():
    """On a GPU: graph replay reproduces eager bit for bit (fresh dropout masks every replay, the schedule
    and Nadam's product moved on the device), and both match NumPy."""
    from mlp_gpu.backend import get_backend

    x, y = blobs(n=200, features=6)
    weights = []
    for backend in (get_backend("cupy", graph=False, gemm="kernel"), get_backend("cupy", graph=True, gemm="kernel"),
                    "numpy"):
        model = Sequential(toolbox_net(x), backend=backend)
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=OPTIMIZERS["nadam-exponential"](), metrics=["accuracy"], seed=1)
        model.fit(x, y, batch_size=16, epochs=3, seed=4, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(weights[0], weights[1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(weights[0], weights[2]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
