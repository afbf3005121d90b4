"""compile(run_eagerly=True): an untraceable Python loss or metric trains on the host, logged as slow;
without it compile refuses the function naming its line and op."""
import logging

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential, ops
from mlp_gpu.tracing import TraceError

from ..harness.host_ops import HostCudaOps, compiler


def np_huber(y_true, y_pred):  # NumPy calls and a data-dependent if: not traceable
    error = np.abs(y_true - y_pred)
    if error.max() > 1e6:
        return error
    return np.where(error < 1, error ** 2 / 2, error - 0.5)


def huber_fn(y_true, y_pred):
    error = y_true - y_pred
    return ops.where(ops.abs(error) < 1, ops.square(error) / 2, ops.abs(error) - 0.5)


def np_mae(y_true, y_pred):
    return np.abs(y_true - y_pred).mean(axis=-1)


def _fit(loss, metric, backend="numpy", **compile_args):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 4)).astype(np.float32)
    y = (x[:, :2] * 2).astype(np.float32)
    model = Sequential([Input((4,)), Dense(6, "relu"), Dense(2)], backend=backend)
    model.compile(optimizer="sgd", loss=loss, metrics=[metric], seed=0, **compile_args)
    return model, model.fit(x, y, epochs=2, verbose=0, shuffle=False).history


def test_untraceable_loss_is_refused_at_compile_naming_function_line_and_op():
    with pytest.raises(TraceError, match=r"loss np_huber \(.*test_eager.py:\d+\).*numpy.absolute.*test_eager.py:\d+"):
        _fit(np_huber, "mae")


@pytest.mark.parametrize("backend", ["numpy", "host"])
def test_run_eagerly_trains_as_the_traced_function(caplog, backend):
    if backend == "host" and compiler() is None:
        pytest.skip("g++ not found")
    be = HostCudaOps() if backend == "host" else "numpy"
    with caplog.at_level(logging.WARNING, logger="mlp_gpu"):
        eager, eager_h = _fit(np_huber, np_mae, be, run_eagerly=True)
    assert sum("runs eagerly on the host" in r.getMessage() for r in caplog.records) == 2  # the loss, the metric
    traced, traced_h = _fit(huber_fn, "mae")
    np.testing.assert_allclose(eager_h["loss"], traced_h["loss"], rtol=1e-5)
    np.testing.assert_allclose(eager_h["np_mae"], traced_h["mae"], rtol=1e-5)
    for got, want in zip(eager.get_weights(), traced.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_a_stateful_metric_subclass_is_refused_with_the_traceable_form():
    from mlp_gpu.metrics import Metric

    class StreamingHuber(Metric):  # Géron's first HuberMetric: add_weight / assign_add state
        def update_state(self, y_true, y_pred, sample_weight=None):
            pass

    with pytest.raises(ValueError, match="StreamingHuber subclasses Metric with its own state.*Mean"):
        _fit(huber_fn, StreamingHuber())
