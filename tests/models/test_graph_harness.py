"""Graphs through the CuPy backend's launches run on the CPU by the host harness, against the NumPy
backend from the same seed: a residual MLP with BatchNormalization and Dropout (one branch forced
into training mode), and two weighted outputs with per-output metrics."""
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import layers as L

from ..conftest import blobs
from ..harness.host_ops import HostCudaOps, compiler

pytestmark = pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")


def residual_toolbox(backend):
    x = mlp_gpu.Input((6,), name="x")
    h = L.Dense(6, "relu", kernel_regularizer="l2", name="h1")(x)
    h = L.BatchNormalization(name="bn")(h)
    h = L.Dropout(0.2, seed=3, name="drop")(h)
    r = L.add([x, h], name="skip")
    always = L.Dropout(0.5, seed=5, name="always")(r, training=True)  # Keras: training=True at the call wins
    out = L.Dense(3, "softmax", name="out")(L.concatenate([r, always], name="cat"))
    return mlp_gpu.Model(x, out, backend=backend)


def two_heads(backend):
    a, b = mlp_gpu.Input((6,), name="a"), mlp_gpu.Input((4,), name="b")
    h = L.Dense(8, "tanh", name="h")(b)
    main = L.Dense(3, "softmax", name="main")(L.Concatenate(name="cat")([a, h]))
    aux = L.Dense(1, "sigmoid", name="aux")(L.Maximum(name="max")([h, L.Dense(8, name="h2")(h)]))
    return mlp_gpu.Model([a, b], [main, aux], backend=backend)


def test_residual_toolbox_graph_matches_numpy():
    x, y = blobs(n=45, features=6)
    models, histories = [], []
    for backend in ("numpy", HostCudaOps()):
        model = residual_toolbox(backend)
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=mlp_gpu.optimizers.Adam(0.01), metrics=["accuracy"], seed=1)
        histories.append(model.fit(x, y, batch_size=8, epochs=2, seed=4, verbose=0,
                                   validation_data=(x[:10], y[:10])).history)
        models.append(model)
    ref, harness = models
    assert ref._general and "graph" in ref.backend.route["reason"]  # not the folded step: the general one
    for a, b in zip(ref.get_weights(), harness.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    for key in histories[0]:
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-4)
    # 12 training steps, and the 2 validation passes draw for the branch that always drops
    assert int(ref.rng_counter[0]) == int(harness.rng_counter[0]) == 14
    # predict runs inference, except the branch called with training=True: it still drops
    p1, p2 = ref.predict(x), ref.predict(x)
    assert not np.allclose(p1, p2)
    harness.predict(x), harness.predict(x)  # the same draws on both sides
    np.testing.assert_allclose(harness.predict(x), ref.predict(x), rtol=1e-4, atol=1e-6)


def test_two_outputs_match_numpy():
    xa, y = blobs(n=40, features=6)
    xb = np.random.default_rng(2).normal(size=(40, 4)).astype(np.float32)
    yb = (xb[:, :1] > 0).astype(np.float32)
    results = []
    for backend in ("numpy", HostCudaOps()):
        model = two_heads(backend)
        model.compile(loss=["sparse_categorical_crossentropy", "binary_crossentropy"], loss_weights=[1.0, 0.5],
                      optimizer=mlp_gpu.SGD(0.1, momentum=0.9), metrics={"main": "accuracy", "aux": ["accuracy"]},
                      seed=2)
        history = model.fit((xa, xb), (y, yb), batch_size=16, epochs=3, seed=1, verbose=0)
        results.append((model, history.history, model.evaluate((xa, xb), (y, yb), return_dict=True)))
    (ref, h_ref, e_ref), (harness, h_har, e_har) = results
    assert sorted(h_ref) == ["aux_accuracy", "aux_loss", "loss", "main_accuracy", "main_loss"]
    for key in h_ref:
        np.testing.assert_allclose(h_har[key], h_ref[key], rtol=1e-4, err_msg=key)
        np.testing.assert_allclose(e_har[key], e_ref[key], rtol=1e-4, err_msg=key)
    np.testing.assert_allclose(h_ref["loss"], np.add(h_ref["main_loss"], np.multiply(0.5, h_ref["aux_loss"])),
                               rtol=1e-6)
    for a, b in zip(ref.get_weights(), harness.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
