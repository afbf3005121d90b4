"""ONNX export of traced functions (Lambda layers, Python activations), run in ONNX Runtime against predict."""
import numpy as np
import pytest

from mlp_gpu import Dense, Input, Lambda, Sequential, ops

from .test_onnx import TOL, run_onnx

pytest.importorskip("onnxruntime")


def my_softplus(z):
    return ops.log(ops.exp(z) + 1.0)


def every_op(x):
    d = ops.clip(x, -1.0, 1.5) - ops.mean(x, axis=-1, keepdims=True)
    gate = ops.logical_and(x > -0.5, ops.not_equal(x, 0.25))
    y = ops.where(gate, ops.square(d), ops.abs(d) ** 1.5) + ops.log1p(ops.sigmoid(x)) * ops.sign(x)
    y = y + ops.cast(ops.greater_equal(x, 0.0), "float32") + ops.softplus(-x) / (1.0 + ops.exp(ops.tanh(x)))
    return ops.maximum(y, ops.relu(x)) - ops.minimum(ops.sqrt(ops.abs(x)), ops.max(x, axis=-1, keepdims=True)) \
        + ops.sum(x, axis=-1, keepdims=True) * ops.min(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("opset", [13, 21])
def test_traced_functions_export_as_their_ops(tmp_path, opset):
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    model = Sequential([Input((6,)), Dense(7, activation=my_softplus), Lambda(every_op), Lambda(lambda v: v * 2),
                        Dense(3)], backend="numpy").build(seed=0)
    model.export(tmp_path / "m.onnx", verbose=False, opset_version=opset)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), model.predict(x), atol=TOL * 10, rtol=1e-5)
