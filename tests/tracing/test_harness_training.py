"""A model with a custom loss, metric, Lambda and activation trains through the CUDA ops (every launch on
the host harness) to the NumPy backend's weights and logs; the loss is one launch per step."""
import numpy as np
import pytest

from mlp_gpu import Dense, Input, Lambda, Sequential, ops
from mlp_gpu.metrics import MeanMetricWrapper

from ..harness.host_ops import HostCudaOps, compiler
from .test_tracing import huber_fn, my_softplus

pytestmark = pytest.mark.skipif(compiler() is None, reason="g++ not found")


def abs_gap(y_true, y_pred):
    return ops.mean(ops.abs(y_true - y_pred), axis=-1)


def _train(backend):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 6)).astype(np.float32)  # two batches of 32 and one of 6
    y = (x[:, :3] * 1.5 - 0.25).astype(np.float32)
    model = Sequential([Input((6,)), Dense(8, activation=my_softplus), Lambda(lambda x: x * 2), Dense(3)],
                       backend=backend)
    model.compile(loss=huber_fn, optimizer="sgd", metrics=[abs_gap], seed=5)
    history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    return model, history


def test_custom_objects_train_on_the_harness_as_on_numpy():
    host = HostCudaOps()
    ours, ours_h = _train(host)
    ref, ref_h = _train("numpy")
    for got, want in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
    for key in ref_h:
        np.testing.assert_allclose(ours_h[key], ref_h[key], rtol=2e-4, err_msg=key)
    loss_kernel = ours.loss.program(3).kernel_name
    assert host.launches.count(loss_kernel) == 2 * 3  # one launch a step: 3 steps an epoch, 2 epochs
    assert not any(name in ("mse", "sigmoid_bce", "softmax_xent_dense") for name in host.launches)


def test_metric_wrapper_is_keras_mean_on_concrete_arrays():
    metric = MeanMetricWrapper(abs_gap)
    metric.update_state(np.zeros((2, 3)), np.ones((2, 3)))
    metric.update_state(np.zeros((1, 3)), np.full((1, 3), 4.0))
    assert metric.result() == pytest.approx(2.0)  # rows 1, 1, 4
    assert metric.name == "abs_gap"
