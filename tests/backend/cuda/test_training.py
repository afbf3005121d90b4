"""The CuPy backend's launch logic over a whole training run, executed on the CPU by the
host harness (kernel GEMM), against the NumPy backend from the same seed."""
import numpy as np
import pytest

from mlp_gpu import SGD, Adam, Dense, Flatten, Input, Sequential

from ...conftest import blobs
from ...harness.host_ops import HostCudaOps, compiler

pytestmark = pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")


def pair(optimizer_factory, layers_factory, loss="sparse_categorical_crossentropy"):
    models = []
    for backend in ("numpy", HostCudaOps()):
        model = Sequential(layers_factory(), backend=backend)
        model.compile(loss=loss, optimizer=optimizer_factory(), metrics=["accuracy"], seed=1)
        models.append(model)
    return models


def mlp():
    return [Input((6,)), Dense(9, "relu"), Dense(7, "tanh"), Dense(3, "softmax")]


@pytest.mark.parametrize("opt", [lambda: SGD(0.1), lambda: SGD(0.05, momentum=0.9, nesterov=True),
                                 lambda: Adam(0.01)], ids=["sgd", "nesterov", "adam"])
def test_training_matches_numpy(opt):
    x, y = blobs(n=45, features=6)
    ref, gpu_logic = pair(opt, mlp)
    h_ref = ref.fit(x, y, batch_size=8, epochs=2, seed=4, verbose=0, validation_data=(x[:10], y[:10]))
    h_gpu = gpu_logic.fit(x, y, batch_size=8, epochs=2, seed=4, verbose=0, validation_data=(x[:10], y[:10]))
    for a, b in zip(ref.get_weights(), gpu_logic.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for key in h_ref.history:
        np.testing.assert_allclose(h_gpu.history[key], h_ref.history[key], rtol=1e-4)
    assert gpu_logic.optimizer.iterations == ref.optimizer.iterations == 12
    np.testing.assert_allclose(gpu_logic.predict(x), ref.predict(x), rtol=1e-4, atol=1e-6)


def test_uint8_images_binary_and_mse_losses_match_numpy():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 3, 3)).astype(np.uint8)
    for loss, units, act, y in [("binary_crossentropy", 1, "sigmoid", rng.integers(0, 2, 20)),
                                ("categorical_crossentropy", 4, "softmax", np.eye(4)[rng.integers(0, 4, 20)]),
                                ("mse", 2, "linear", rng.normal(size=(20, 2)))]:
        ref, gpu_logic = pair(lambda: SGD(0.1), lambda: [Input((3, 3)), Flatten(), Dense(5, "sigmoid"),
                                                         Dense(units, act)], loss=loss)  # noqa: B023
        for m in (ref, gpu_logic):
            m.fit(pixels, y, batch_size=6, epochs=1, seed=2, verbose=0, shuffle=True)
        for a, b in zip(ref.get_weights(), gpu_logic.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=loss)


def test_kernels_per_training_step():
    """The count the launch floor is measured against: 21 launches for a 3-layer MLP step."""
    x, y = blobs(n=16, features=6)
    _, gpu_logic = pair(lambda: SGD(0.1), mlp)
    backend = gpu_logic.backend
    gpu_logic.fit(x, y, batch_size=16, epochs=1, seed=0, verbose=0)
    step = backend.launches[:backend.launches.index("advance") + 1]
    assert len(step) == 21
    assert step[:2] == ["gather_rows_f32", "gather_rows_i32"] and step[-2:] == ["sgd_update", "advance"]
    assert step.count("sgemm_strided") == 8  # 3 forward, 3 weight gradients, 2 input gradients
