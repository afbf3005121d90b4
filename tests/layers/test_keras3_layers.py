"""LayerNormalization, UnitNormalization, GaussianNoise, GaussianDropout, AlphaDropout, Reshape, Rescaling and
Identity: forward numbers against Keras 3 on awkward inputs, float64 finite-difference gradients on the NumPy
backend, Keras' signatures and get_config, our HDF5 and Keras' .keras files both ways, bad arguments."""
import inspect
import math
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from mlp_gpu import Dense, Flatten, Input, Model, Sequential, load_model  # noqa: E402
from mlp_gpu import layers as L  # noqa: E402
from mlp_gpu.io.keras import export_keras_weights  # noqa: E402
from mlp_gpu.layers import layer_from_config  # noqa: E402
from mlp_gpu.models import packing  # noqa: E402
from ..conftest import central_differences  # noqa: E402

BASE_KEYS = ("trainable", "dtype")  # the Layer's own keys: the Layer base's part, compared where ours has them


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def _np(keras, t):
    return keras.ops.convert_to_numpy(t)


def _graph(layer, shape, dtype="float32"):
    """[Input(shape) -> layer -> Flatten -> Dense] beside a second output, so the general graph passes run them
    (the Sequential chain's buffers are (rows, *shape): see test_sequential_chain_with_a_multi_dim_computing_layer)."""
    inp = Input(shape)
    out = layer(inp)
    model = Model(inp, [Dense(2)(Flatten()(out)), Dense(1)(Flatten()(inp))], backend="numpy", dtype=dtype)
    model.compile(loss=["mse", "mse"], seed=0)
    assert model._general
    return model, out


def _layer_out(layer, shape, x, training=False, dtype="float32", weights=None):
    """Our layer's output on x (rows, *shape), the model, its workspace and the layer's buffers."""
    model, out = _graph(layer, shape, dtype)
    if weights is not None:
        layer.set_weights(weights)
    ws = model.workspace(x.shape[0])
    ws.x[...] = x.reshape(x.shape[0], -1)
    model.forward(ws.x, ws, training=training)
    k = next(k for k, node in enumerate(model._graph.nodes) if node.layer is layer)
    value = ws.value[model._graph.tid[id(out)]]
    return value.reshape(x.shape).copy(), model, ws.aux[k]


def _same_config(ours, theirs):
    """(our get_config equals Keras' on every key, detail); the Layer base's trainable/dtype only where ours
    writes them (dtype by its name)."""
    ours, theirs = dict(ours), dict(theirs)
    ours.pop("input_shape", None)
    for key in BASE_KEYS:
        if key not in ours:
            theirs.pop(key)
    if isinstance(ours.get("dtype"), str):
        theirs["dtype"] = theirs["dtype"]["config"]["name"]
    return ours == theirs, (ours, theirs)


# ---- forward numbers against Keras 3 --------------------------------------------------------------------------

LN_CASES = [  # (sample shape, axis, center, scale)
    ((7,), -1, True, True),
    ((7,), 1, False, True),
    ((7,), -1, True, False),
    ((1,), -1, True, True),        # one feature: the variance is 0, the output is beta
    ((3, 4), -1, True, True),
    ((3, 4), [1, 2], True, True),
    ((3, 4), 1, True, True),       # the first sample axis: gamma broadcast over the last
    ((2, 3, 5), [-3, -1], True, True),
]


def _trailing(axes, shape):
    return axes == list(range(len(shape) - len(axes), len(shape)))


def _keras_layer_norm(x, weights, layer, shape):
    """Keras' formula (ops.nn._layer_normalization, the path off torch): x * inv + res in float64."""
    ax = tuple(a + 1 for a in layer._axes)
    mean, var = x.mean(axis=ax, keepdims=True), x.var(axis=ax, keepdims=True)
    inv = 1 / np.sqrt(var + layer.epsilon)
    weights = list(weights)
    if layer.scale:
        inv = inv * weights.pop(0).reshape(layer._broadcast)
    res = -mean * inv + (weights.pop(0).reshape(layer._broadcast) if layer.center else 0)
    return x * inv + res


@pytest.mark.parametrize("shape,axis,center,scale", LN_CASES)
def test_layer_normalization_matches_keras(keras, shape, axis, center, scale):
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, (33,) + shape).astype(np.float32)
    x[0] = 1000.0  # a constant sample
    ours = L.LayerNormalization(axis=axis, center=center, scale=scale, epsilon=1e-2, name="ln")
    theirs = keras.layers.LayerNormalization(axis=axis, center=center, scale=scale, epsilon=1e-2, name="ln")
    theirs.build((None,) + shape)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    got, _, _ = _layer_out(ours, shape, x, weights=weights)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
    want = _keras_layer_norm(x.astype(np.float64), weights, ours, shape)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
    if _trailing(ours._axes, shape):  # else Keras' torch backend refuses it (F.layer_norm wants trailing axes)
        np.testing.assert_allclose(got[1:], _np(keras, theirs(x))[1:], atol=2e-5, rtol=1e-5)
    # the constant sample: exactly beta (Keras' float32 moments on the other axes lose it to cancellation)
    beta = weights[-1] if center else np.zeros(ours.weight_shape)
    np.testing.assert_allclose(got[0], np.broadcast_to(np.reshape(beta, ours._broadcast[1:]), shape), atol=1e-6)
    same, detail = _same_config(ours.get_config(), theirs.get_config())
    assert same, detail


@pytest.mark.parametrize("shape,axis", [((5,), -1), ((3, 4), [1, 2]), ((3, 4), 1), ((3, 4), -1)])
def test_unit_normalization_matches_keras_with_zero_and_tiny_samples(keras, shape, axis):
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 4.0, (31,) + shape).astype(np.float32)
    x[0] = 0.0
    x[1] = 1e-14  # sum of squares below 1e-24: Keras caps 1 / norm at 1e12
    x[2] = 1e-10
    ours, theirs = L.UnitNormalization(axis=axis, name="u"), keras.layers.UnitNormalization(axis=axis, name="u")
    got, _, _ = _layer_out(ours, shape, x)
    want = _np(keras, theirs(x))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(got[0] == 0)
    assert _same_config(ours.get_config(), theirs.get_config())[0]


def test_unit_normalization_gradient_where_the_norm_is_capped():
    """Below Keras' floor y = x * 1e12 is linear: dx = 1e12 * dy (no projection term), as autograd gives."""
    x = np.array([[1e-14, -2e-14, 3e-14], [3.0, -4.0, 0.0]])
    layer = L.UnitNormalization()
    y, model, aux = _layer_out(layer, (3,), x, dtype="float64")
    dy = np.array([[1.0, 2.0, -1.0], [0.5, 0.25, 2.0]])
    dx = np.empty_like(dy)
    layer.backward(model.backend, x, y, dy.copy(), dx, aux)
    np.testing.assert_allclose(dx[0], 1e12 * dy[0], rtol=1e-12)
    np.testing.assert_allclose(dx[1], (dy[1] - y[1] * (dy[1] @ y[1])) / 5.0, rtol=1e-12)


def test_rescaling_reshape_identity_match_keras(keras):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(17, 12)).astype(np.float32) * 100
    for ours, theirs in ((L.Rescaling(1 / 127.5, offset=-1, name="r"), keras.layers.Rescaling(1 / 127.5, offset=-1,
                                                                                               name="r")),
                         (L.Rescaling(3, name="r"), keras.layers.Rescaling(3, name="r"))):
        got, _, _ = _layer_out(ours, (12,), x)
        np.testing.assert_allclose(got, _np(keras, theirs(x)), rtol=1e-6)
        assert _same_config(ours.get_config(), theirs.get_config())[0]
    for target in ((-1, 2), (3, -1, 2), (12,), (2, 2, 3)):
        model = Sequential([Input((12,)), L.Reshape(target), L.Identity(), Flatten(), Dense(2)], backend="numpy")
        model.build(seed=0)
        want = keras.layers.Reshape(target).compute_output_shape((None, 12))
        assert (None,) + model.layers[0].shape_out == want == (None,) + model.layers[1].shape_out
        np.testing.assert_array_equal(np.asarray(_np(keras, keras.layers.Reshape(target)(x))).reshape(17, -1), x)
        assert _same_config(L.Reshape(target, name="r").get_config(),
                            keras.layers.Reshape(target, name="r").get_config())[0]
    assert _same_config(L.Identity(name="i").get_config(), keras.layers.Identity(name="i").get_config())[0]


def _raw_normals(layer, aux, rows):
    """The layer's N(0, 1) draws for the model's counter now (a fresh buffer)."""
    xp = layer.backend.xp
    z = xp.empty((rows, layer.units), aux["u"].dtype)
    layer.normal(xp, z, aux)
    return z


def test_noise_layers_follow_keras_formulas_given_the_same_draws(keras, monkeypatch):
    """Keras' call with its random draws replaced by ours gives our training output: the formulas are Keras'."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 9)).astype(np.float32)
    from keras.src import backend as kb, ops

    for make, kind in ((lambda: L.GaussianNoise(0.3, seed=1, name="n"), keras.layers.GaussianNoise(0.3, seed=1,
                                                                                                    name="n")),
                       (lambda: L.GaussianDropout(0.4, seed=2, name="n"), keras.layers.GaussianDropout(0.4, seed=2,
                                                                                                        name="n"))):
        ours, theirs = make(), kind
        got, model, aux = _layer_out(ours, (9,), x, training=True)
        model.rng_counter[...] = 0  # the forward above drew with counter 0
        z = _raw_normals(ours, aux, 40)
        monkeypatch.setattr(kb.random, "normal", lambda shape, mean=0.0, stddev=1.0, dtype=None, seed=None, z=z:
                            kb.convert_to_tensor(mean + stddev * z))
        np.testing.assert_allclose(got, _np(keras, theirs(x, training=True)), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(_layer_out(make(), (9,), x)[0], x)  # inference: the identity
        np.testing.assert_array_equal(_np(keras, theirs(x)), x)
        assert _same_config(make().get_config(), theirs.get_config())[0]
    ours, theirs = L.AlphaDropout(0.3, seed=4, name="n"), keras.layers.AlphaDropout(0.3, seed=4, name="n")
    assert _same_config(ours.get_config(), theirs.get_config())[0]
    got, model, ws = _layer_out(ours, (9,), x, training=True)
    dropped_value = np.float32(-ours._a * 1.6732632423543772 * 1.0507009873554805 + ours._b)
    kept = got != dropped_value
    assert 0.5 < kept.mean() < 0.9
    monkeypatch.setattr(ops.random, "uniform", lambda shape, seed=None: kb.convert_to_tensor(
        kept.astype(np.float32)))  # >= rate where kept
    np.testing.assert_allclose(got, _np(keras, theirs(x, training=True)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normal_draws_are_standard_normal_fresh_and_reproducible(dtype):
    layer = L.GaussianNoise(1.0, seed=11)
    x = np.zeros((4000, 50))
    _, model, ws = _layer_out(layer, (50,), x, dtype=dtype)
    model.rng_counter[...] = 0
    z = _raw_normals(layer, ws, 4000).astype(np.float64)
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n) and abs(z.std() - 1) < 0.01
    assert abs(((z - z.mean()) ** 4).mean() / z.var() ** 2 - 3) < 0.05        # normal tails, not a uniform's
    s = np.sort(z.ravel())
    cdf = 0.5 * (1 + np.frompyfunc(math.erf, 1, 1)(s / math.sqrt(2)).astype(np.float64))
    assert np.abs(cdf - (np.arange(n) + 0.5) / n).max() < 1.63 / math.sqrt(n) * 1.5  # Kolmogorov-Smirnov
    assert abs(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]) < 0.01   # neighbouring features
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 0.01         # neighbouring rows
    again = _raw_normals(layer, ws, 4000)
    np.testing.assert_array_equal(again, z.astype(dtype))                       # same key and counter
    model.rng_counter[...] = 1
    fresh = _raw_normals(layer, ws, 4000).astype(np.float64)
    assert abs(np.corrcoef(z.ravel(), fresh.ravel())[0, 1]) < 0.01               # the next draw is fresh
    other = L.GaussianNoise(1.0, seed=12)
    _, model2, ws2 = _layer_out(other, (50,), x, dtype=dtype)
    model2.rng_counter[...] = 0
    assert abs(np.corrcoef(z.ravel(), _raw_normals(other, ws2, 4000).astype(np.float64).ravel())[0, 1]) < 0.01


def test_noise_statistics_in_training():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 40)).astype(np.float32) + 2
    got, _, _ = _layer_out(L.GaussianNoise(0.2, seed=1), (40,), x, training=True)
    assert abs((got - x).std() - 0.2) < 0.003
    got, _, _ = _layer_out(L.GaussianDropout(0.2, seed=1), (40,), x, training=True)
    assert abs((got / x).mean() - 1) < 0.003 and abs((got / x).std() - 0.5) < 0.005  # sqrt(0.2 / 0.8)
    z = rng.normal(size=(3000, 40)).astype(np.float32)  # SELU's fixed point: AlphaDropout keeps mean 0, var 1
    got, _, _ = _layer_out(L.AlphaDropout(0.2, seed=1), (40,), z, training=True)
    assert abs(got.mean()) < 0.02 and abs(got.var() - 1) < 0.03


def test_a_call_with_training_true_draws_noise_in_predict():
    inp = Input((6,))
    noisy = L.GaussianNoise(0.5, seed=3)(inp, training=True)
    plain = L.GaussianNoise(0.5, seed=3)(inp)
    model = Model(inp, [Dense(2)(noisy), Dense(2)(plain)])
    model.compile(loss="mse", seed=0)
    x = np.ones((5, 6), np.float32)
    first, second = model.predict(x), model.predict(x)
    assert not np.allclose(first[0], second[0])   # forced training: fresh noise each call
    np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.parametrize("make", [lambda: L.GaussianDropout(0.5, seed=1), lambda: L.AlphaDropout(0.5, seed=1),
                                  lambda: L.Dropout(0.5, seed=1)])
def test_backward_after_an_inference_pass_is_the_identity(make):
    """A call forced to training=False inside a training step: its gradient is dy, not the last draw's factor."""
    layer = make()
    x = np.random.default_rng(4).normal(size=(6, 5))
    _, model, aux = _layer_out(layer, (5,), x, training=True, dtype="float64")
    dy, dx = np.ones((6, 5)), np.empty((6, 5))
    layer.backward(model.backend, x, None, dy, dx, aux)
    assert not np.allclose(dx, dy)  # after the training pass: the noise's factor
    out = np.empty((6, 5))
    layer.forward(model.backend, x, out, training=False, aux=aux)
    layer.backward(model.backend, x, out, dy, dx, aux)
    np.testing.assert_array_equal(dx, dy)


# ---- gradients against float64 central differences -------------------------------------------------------------

def _mean_loss(model, x, y, ws):
    acc = np.zeros(3)
    model.rng_counter[...] = 0  # the same noise for every evaluation
    model.forward(x, ws, logits=True, training=True)
    model.loss_and_count(ws, y, acc)
    return acc[0] / x.shape[0]


GRADIENT_STACKS = {
    "layer_norm": lambda: [L.LayerNormalization(beta_regularizer="l2", gamma_regularizer="l1")],
    "layer_norm_no_center": lambda: [L.LayerNormalization(center=False)],
    "layer_norm_no_scale": lambda: [L.LayerNormalization(scale=False)],
    "unit_norm": lambda: [L.UnitNormalization()],
    "rescaling": lambda: [L.Rescaling(-2.5, 0.5)],
    "gaussian_noise": lambda: [L.GaussianNoise(0.5, seed=1)],
    "gaussian_dropout": lambda: [L.GaussianDropout(0.4, seed=2)],
    "alpha_dropout": lambda: [L.AlphaDropout(0.3, seed=3)],
    "reshape_identity": lambda: [L.Reshape((3, -1)), L.Identity(), Flatten()],
}


@pytest.mark.parametrize("kind", sorted(GRADIENT_STACKS))
def test_gradients_match_finite_differences(kind):
    """Weights, and the input: the layer's dx reaches the linear Dense before it, and x through that."""
    rng = np.random.default_rng(6)
    model = Sequential([Input((5,)), Dense(6, "linear"), *GRADIENT_STACKS[kind](), Dense(3, "softmax")],
                       backend="numpy", dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    model.params[...] = rng.uniform(0.2, 1.0, model.params.size) * rng.choice([-1, 1], model.params.size)
    x, y = rng.normal(size=(7, 5)), rng.integers(0, 3, 7).astype(np.int32)
    ws = model.workspace(7)
    _mean_loss(model, x, y, ws)
    model.backward(x, ws)
    analytic = model.grads.copy()
    dx = ws.dz[0] @ model.dense_layers[0].kernel.T
    np.testing.assert_allclose(analytic, central_differences(lambda: _mean_loss(model, x, y, ws), model.params),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(dx, central_differences(lambda: _mean_loss(model, x, y, ws), x), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("make", [lambda: L.LayerNormalization(axis=1), lambda: L.LayerNormalization(axis=[1, 2]),
                                  lambda: L.LayerNormalization(axis=-1, center=False),
                                  lambda: L.UnitNormalization(axis=1), lambda: L.UnitNormalization(axis=[-2, -1]),
                                  lambda: L.GaussianDropout(0.3, seed=1)])
def test_gradients_over_sample_axes_match_finite_differences_in_a_graph(make):
    """(2, 3) samples through the graph passes: Dense -> Reshape -> layer -> Flatten -> Dense, beside a second
    output; every weight against central differences."""
    rng = np.random.default_rng(9)
    inp = Input((5,))
    t = Flatten()(make()(L.Reshape((2, 3))(Dense(6, "linear")(inp))))
    model = Model(inp, [Dense(3, "softmax")(t), Dense(1)(inp)], backend="numpy", dtype="float64")
    model.compile(loss=["sparse_categorical_crossentropy", "mse"], optimizer="sgd", seed=0)
    assert model._general
    model.params[...] = rng.uniform(0.2, 1.0, model.params.size) * rng.choice([-1, 1], model.params.size)
    ws = model.workspace(6)
    ws.x[...] = rng.normal(size=(6, 5))
    ws.y[...] = packing.pack_targets(model, (rng.integers(0, 3, 6), rng.normal(size=(6, 1))))

    def loss():
        acc = np.zeros(model.sums_size)
        model.rng_counter[...] = 0
        model.forward(ws.x, ws, logits=True, training=True)
        model.loss_and_count(ws, ws.y, acc)
        return acc[0] / ws.rows

    loss()
    model.backward(ws.x, ws)
    analytic = model.grads.copy()
    np.testing.assert_allclose(analytic, central_differences(loss, model.params), rtol=1e-5, atol=1e-8)


def test_sequential_chain_with_a_multi_dim_computing_layer():
    model = Sequential([Input((3, 4)), L.LayerNormalization(axis=1), Flatten(), Dense(2)], backend="numpy")
    model.compile(loss="mse", seed=0)
    x = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)
    assert model.predict(x).shape == (5, 2)


def test_layer_normalization_trains_in_a_functional_graph_and_its_gradients_add_up():
    rng = np.random.default_rng(7)
    inp = Input((4,))
    ln = L.LayerNormalization()
    shared = Dense(4, "tanh")
    a, b = ln(shared(inp)), L.GaussianNoise(0.1, seed=1)(L.Rescaling(2.0)(inp))
    model = Model(inp, Dense(3, "softmax")(L.Concatenate()([a, b])))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", seed=0)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, 64).astype(np.int32)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.allclose(ln.get_weights()[0], 1)  # gamma moved


# ---- signatures, configs, files ----------------------------------------------------------------------------------

NAMES = ["LayerNormalization", "UnitNormalization", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Reshape",
         "Rescaling", "Identity", "Dropout", "Lambda", "BatchNormalization", "Normalization", "Add", "Subtract",
         "Multiply", "Average", "Maximum", "Minimum", "Concatenate"]


@pytest.mark.parametrize("name", NAMES)
def test_signatures_are_keras(keras, name):
    def params(cls):
        return [(p.name, p.kind, p.default) for p in inspect.signature(cls).parameters.values()]
    assert params(getattr(L, name)) == params(getattr(keras.layers, name))


CONFIG_CASES = [
    ("LayerNormalization", dict(axis=-1, epsilon=0.01, center=False, beta_initializer="random_normal",
                                gamma_regularizer="l2"), (6,)),
    ("LayerNormalization", dict(axis=[1, 2]), (2, 3)),
    ("UnitNormalization", dict(axis=[1, 2]), (2, 3)),
    ("GaussianNoise", dict(stddev=0.25, seed=3), (6,)),
    ("GaussianDropout", dict(rate=0.25, seed=3), (6,)),
    ("AlphaDropout", dict(rate=0.25, seed=3), (6,)),
    ("Reshape", dict(target_shape=(-1, 3)), (6,)),
    ("Rescaling", dict(scale=0.5, offset=2), (6,)),
    ("Identity", {}, (6,)),
    ("Dropout", dict(rate=0.5, seed=2), (6,)),
]


@pytest.mark.parametrize("name,args,shape", CONFIG_CASES)
def test_get_config_is_keras_and_round_trips(keras, name, args, shape):
    ours, theirs = getattr(L, name)(name="x", **args), getattr(keras.layers, name)(name="x", **args)
    assert _same_config(ours.get_config(), theirs.get_config())[0]
    Sequential([Input(shape), ours, Flatten(), Dense(2)], backend="numpy").build(seed=0)
    theirs.build((None,) + shape)
    same, detail = _same_config(ours.get_config(), theirs.get_config())  # built: LayerNormalization's axis list
    assert same, detail
    again = layer_from_config(name, ours.get_config())
    assert type(again) is type(ours) and again.get_config() == ours.get_config()


def _all_layers_net():
    return Sequential([Input((12,)), L.Rescaling(0.5, 0.1), L.LayerNormalization(beta_regularizer="l2"),
                       L.GaussianNoise(0.1), Dense(8, "relu"), L.UnitNormalization(), L.AlphaDropout(0.1),
                       L.GaussianDropout(0.2), L.Reshape((2, -1)), L.Identity(), Flatten(), Dense(3, "softmax")],
                      backend="numpy")


def _data(rows=64):
    rng = np.random.default_rng(8)
    return rng.normal(size=(rows, 12)).astype(np.float32), rng.integers(0, 3, rows).astype(np.int32)


def test_hdf5_round_trip_keeps_weights_configs_and_noise_keys(tmp_path):
    x, y = _data()
    model = _all_layers_net()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "m.h5")
    back = load_model(tmp_path / "m.h5", backend="numpy")
    assert [type(a) for a in back.layers] == [type(b) for b in model.layers]
    assert [a.get_config() for a in back.layers] == [b.get_config() for b in model.layers]
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    ws, ws_back = model.workspace(64), back.workspace(64)
    model.rng_counter[...] = back.rng_counter[...] = 5
    model.forward(x, ws, training=True)
    back.forward(x, ws_back, training=True)
    np.testing.assert_array_equal(ws.a[-1], ws_back.a[-1])  # the same keys: the same noise


def test_keras_reads_our_file_and_we_read_keras(keras, tmp_path):
    x, y = _data()
    model = _all_layers_net()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    assert [type(a).__name__ for a in theirs.layers] == [type(b).__name__ for b in model.layers]
    np.testing.assert_allclose(_np(keras, theirs.predict(x, verbose=0)), model.predict(x), atol=1e-6)
    theirs.save(tmp_path / "theirs.keras")
    back = load_model(tmp_path / "theirs.keras", backend="numpy")
    np.testing.assert_allclose(back.predict(x), theirs.predict(x, verbose=0), atol=1e-6)
    assert back.get_layer("layer_normalization").get_config()["beta_regularizer"]["config"] == {"l2": 0.01}
    # Keras' .weights.h5 layout both ways
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    export_keras_weights(model, tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_allclose(_np(keras, theirs.predict(x, verbose=0)), model.predict(x), atol=1e-6)
    theirs.layers[1].set_weights([w * 2 for w in theirs.layers[1].get_weights()])  # the LayerNormalization
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    back.load_weights(tmp_path / "theirs.weights.h5")
    np.testing.assert_allclose(back.predict(x), theirs.predict(x, verbose=0), atol=1e-6)


# ---- bad arguments ---------------------------------------------------------------------------------------------

BAD = [
    (lambda: L.LayerNormalization(axis="last"), TypeError, r"LayerNormalization\(axis\)"),
    (lambda: L.LayerNormalization(epsilon=0), ValueError, r"LayerNormalization\(epsilon\)"),
    (lambda: L.LayerNormalization(center="yes"), ValueError, r"LayerNormalization\(center\)"),
    (lambda: L.LayerNormalization(beta_initializer="nope"), ValueError, r"LayerNormalization\(beta_initializer\)"),
    (lambda: L.LayerNormalization(gamma_constraint="non_neg"), ValueError, r"gamma_constraint"),
    (lambda: L.LayerNormalization(rms_scaling=True), ValueError, r"rms_scaling"),
    (lambda: L.LayerNormalization(colour=1), ValueError, r"Unrecognized keyword arguments.*colour"),  # Keras' words
    (lambda: L.UnitNormalization(axis=1.5), TypeError, r"UnitNormalization\(axis\)"),
    (lambda: L.GaussianNoise(1.5), ValueError, r"GaussianNoise\(stddev\)"),
    (lambda: L.GaussianNoise(0.1, seed=-1), ValueError, r"GaussianNoise\(seed\)"),
    (lambda: L.GaussianDropout(1.0), ValueError, r"GaussianDropout\(rate\)"),
    (lambda: L.AlphaDropout(1.0), ValueError, r"AlphaDropout\(rate\)"),
    (lambda: L.AlphaDropout(0.1, noise_shape=(None, 1)), ValueError, r"AlphaDropout\(noise_shape\)"),
    (lambda: L.Dropout(0.1, noise_shape=(None, 1)), ValueError, r"Dropout\(noise_shape\)"),
    (lambda: L.Reshape((0, 3)), ValueError, r"Reshape\(target_shape\)"),
    (lambda: L.Reshape((-1, -1)), ValueError, r"Reshape\(target_shape\)"),
    (lambda: L.Reshape("ab"), TypeError, r"Reshape\(target_shape\)"),
    (lambda: L.Rescaling("half"), ValueError, r"Rescaling\(scale\)"),
    (lambda: L.Rescaling(1.0, offset=np.array([1, 2])), ValueError, r"Rescaling\(offset\)"),
    (lambda: L.BatchNormalization(renorm=True), ValueError, r"renorm"),
    (lambda: L.BatchNormalization(synchronized=True), ValueError, r"synchronized"),
    (lambda: L.BatchNormalization(beta_constraint="non_neg"), ValueError, r"beta_constraint"),
    (lambda: L.Concatenate(axis=0), ValueError, r"Concatenate\(axis\)"),
]


@pytest.mark.parametrize("make,error,pattern", BAD)
def test_bad_arguments_are_named(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


@pytest.mark.parametrize("layer,shape,pattern", [
    (lambda: L.LayerNormalization(axis=0), (5,), "batch axis"),
    (lambda: L.LayerNormalization(axis=2), (5,), "out of bounds"),
    (lambda: L.UnitNormalization(axis=[1, -1]), (5,), "twice"),
    (lambda: L.Reshape((4,)), (6,), r"cannot reshape .* \(6 values\) to \(4,\)"),
    (lambda: L.Reshape((-1, 4)), (6,), "not a multiple of 4"),
])
def test_bad_shapes_are_named_at_build(layer, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        Sequential([Input(shape), layer(), Flatten(), Dense(2)], backend="numpy").build(seed=0)


# ---- ONNX ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [13, 21])  # ReduceMean takes its axes as an attribute before opset 18
def test_onnx_export_matches_predict(tmp_path, opset):
    ort = pytest.importorskip("onnxruntime")
    x, y = _data()
    model = _all_layers_net()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    inp = Input((12,))
    t = L.Reshape((3, 4))(L.GaussianDropout(0.1)(inp))
    t = L.UnitNormalization(axis=1)(L.LayerNormalization(axis=[1], center=False)(t))
    graph = Model(inp, [Dense(3, "softmax")(Flatten()(t)), Dense(1)(inp)], backend="numpy").build(seed=1)
    for m, want in ((model, [model.predict(x)]), (graph, graph.predict(x))):
        m.export(tmp_path / "m.onnx", verbose=False, opset_version=opset)
        got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": x})
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
