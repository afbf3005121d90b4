"""Our .h5 files for graphs: the wiring (inbound nodes, shared layers), per-output losses and weights,
the optimizer state; a loaded model goes on training exactly as the saved one."""
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import layers as L

from ..models import cases


def _shared():
    x = mlp_gpu.Input((4,), name="x")
    dense = L.Dense(4, "tanh", name="shared")
    h = dense(dense(x))
    return mlp_gpu.Model(x, L.Dense(2, name="out")(L.Add(name="add")([h, x])), backend="numpy")


def _data(model, rows=30, seed=0):
    rng = np.random.default_rng(seed)
    xs = tuple(rng.normal(size=(rows, int(np.prod(t.sample_shape)))).astype(np.float32) for t in model._graph.inputs)
    ys = tuple(rng.normal(size=(rows, u)).astype(np.float32) for u in model._units)
    return (xs if len(xs) > 1 else xs[0]), (ys if len(ys) > 1 else ys[0])


def test_full_save_resumes_training_identically(tmp_path):
    model = cases.two_outputs(mlp_gpu)
    model._backend_request = "numpy"
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer=mlp_gpu.Adam(0.01),
                  metrics=[["mae"], ["mse"]], seed=0)
    x, y = _data(model)
    model.fit(x, y, epochs=2, batch_size=8, seed=1, verbose=0)
    model.save(tmp_path / "m.h5")
    loaded = mlp_gpu.models.load_model(tmp_path / "m.h5", backend="numpy")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded._loss_weights == [0.9, 0.1] and loaded.metrics_names == model.metrics_names
    for a, b in zip(loaded.predict(x), model.predict(x)):
        np.testing.assert_array_equal(a, b)
    h1 = model.fit(x, y, epochs=1, batch_size=8, seed=2, verbose=0).history
    h2 = loaded.fit(x, y, epochs=1, batch_size=8, seed=2, verbose=0).history
    assert h1 == h2


@pytest.mark.parametrize("build", [_shared, lambda: cases.residual(mlp_gpu)])
def test_weights_and_wiring_round_trip(build, tmp_path):
    model = build()
    model._backend_request = "numpy"
    model.build(seed=3)
    model.save_weights(tmp_path / "w.h5")
    fresh = build()
    fresh._backend_request = "numpy"
    fresh.build(seed=4)
    x = np.random.default_rng(0).normal(size=(6, model.in_dim)).astype(np.float32)
    assert not np.allclose(fresh.predict(x), model.predict(x))
    fresh.load_weights(tmp_path / "w.h5")
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    rebuilt = mlp_gpu.Model.from_config(model.get_config(), backend="numpy").build(seed=0)
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_array_equal(rebuilt.predict(x), model.predict(x))
    assert rebuilt.count_params() == model.count_params()  # a shared layer stays one layer


def test_bad_wiring_in_a_config_is_a_clear_error():
    config = _shared().get_config()
    config["layers"][-1]["inbound_nodes"][0][0] = [["nowhere", 0]]
    with pytest.raises(ValueError, match=r"no layer makes: \[\('nowhere', 0\)\]"):
        mlp_gpu.Model.from_config(config)
    config = _shared().get_config()
    config["output_layers"] = [["out", 5]]
    with pytest.raises(ValueError, match=r"output_layers names \['out', 5\]"):
        mlp_gpu.Model.from_config(config)
