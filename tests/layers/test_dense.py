"""Dense, Input and the Layer base with Keras 3's signatures: use_bias=False on every route (weights,
counts, configs, files, gradients, Keras' numbers), Keras' keywords (trainable, dtype, name), build,
count_params, compute_output_shape, and add_weight for a layer of one's own."""
import inspect

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential, constraints, load_model
from mlp_gpu.layers import InputLayer, Layer

from ..harness.host_ops import HostCudaOps, compiler

EPS = 1e-6


@pytest.fixture(scope="module")
def keras(request):
    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_BACKEND", "torch")
    request.addfinalizer(mp.undo)
    return pytest.importorskip("keras")


def params(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj  # Keras' Layer has a __new__(*args, **kwargs) too
    return [(p.name, p.kind, p.default) for p in inspect.signature(target).parameters.values() if p.name != "self"]


def test_signatures_are_keras(keras):
    assert params(Dense) == params(keras.layers.Dense)
    assert params(Input) == params(keras.layers.Input)
    assert params(InputLayer) == params(keras.layers.InputLayer)
    assert params(Layer) == params(keras.layers.Layer)
    for method in ("add_weight", "build", "compute_output_shape", "count_params"):
        assert params(getattr(Layer, method)) == params(getattr(keras.layers.Layer, method)), method


def no_bias_model(**kwargs):
    return Sequential([Input((784,)), Dense(300, "relu", use_bias=False, name="hidden"), Dense(10, "softmax")],
                      backend="numpy", **kwargs)


def test_no_bias_has_no_bias_weight_anywhere(capsys):
    model = no_bias_model().build(seed=0)
    hidden = model.layers[0]
    assert hidden.count_params() == 235_200 and model.count_params() == 235_200 + 3_010
    assert [w.path for w in model.weights] == ["hidden/kernel", "dense/kernel", "dense/bias"]
    assert hidden.bias is None and [w.shape for w in hidden.get_weights()] == [(784, 300)]
    config = hidden.get_config()
    assert config["use_bias"] is False
    again = Dense.from_config(config)
    assert again.use_bias is False and again.get_config() == config
    model.summary()
    assert "235,200" in capsys.readouterr().out


def test_no_bias_matches_keras_and_trains_as_keras(keras):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(16, 5)).astype(np.float32), rng.integers(0, 3, 16)
    kernel1, kernel2, bias2 = (rng.normal(size=s).astype(np.float32) for s in ((5, 4), (4, 3), (3,)))
    ours = Sequential([Input((5,)), Dense(4, "tanh", use_bias=False), Dense(3, "softmax")], backend="numpy")
    ours.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    theirs = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, "tanh", use_bias=False),
                               keras.layers.Dense(3, "softmax")])
    theirs.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.01))
    for m in (ours, theirs):
        m.set_weights([kernel1, kernel2, bias2])
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    theirs.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert "not a kernel followed by a bias" in ours.backend.route["reason"]  # the fused step steps aside
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_no_bias_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    model = Sequential([Input((5,)), Dense(4, "tanh", use_bias=False), Dense(3, "linear", use_bias=False)],
                       backend="numpy", dtype="float64")
    model.compile(loss="mse", optimizer="sgd", seed=0)
    model.params[...] = rng.uniform(0.2, 1.0, model.params.size) * rng.choice([-1, 1], model.params.size)
    assert model.params.size == 5 * 4 + 4 * 3
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(7, 3))
    ws = model.workspace(7)

    def loss():
        acc = np.zeros(2)
        model.forward(x, ws, logits=True)
        model.loss_and_count(ws, y, acc)
        return acc[0] / 7

    loss()
    model.backward(x, ws)
    analytic, numeric = model.grads.copy(), np.empty(model.params.size)
    for i in range(model.params.size):
        keep = model.params[i]
        model.params[i] = keep + EPS
        up = loss()
        model.params[i] = keep - EPS
        numeric[i] = (up - loss()) / (2 * EPS)
        model.params[i] = keep
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("suffix", [".h5", ".keras", ".weights.h5"])
def test_no_bias_save_load_round_trip(tmp_path, suffix):
    model = no_bias_model().build(seed=1)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x = np.random.default_rng(2).random((4, 784)).astype(np.float32)
    path = tmp_path / f"m{suffix}"
    if suffix == ".weights.h5":
        model.save_weights(path)
        back = no_bias_model().build(seed=9)
        back.load_weights(path)
    else:
        model.save(path)
        back = load_model(path)
    assert back.layers[0].use_bias is False and back.count_params() == model.count_params()
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_no_bias_keras_files_both_ways(keras, tmp_path):
    # Keras' default names: Keras reads a weights file's layers by class-based keys (dense, dense_1)
    ours = Sequential([Input((784,)), Dense(300, "relu", use_bias=False), Dense(10, "softmax")],
                      backend="numpy").build(seed=1)
    x = np.random.default_rng(2).random((4, 784)).astype(np.float32)
    ours.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    assert theirs.layers[0].use_bias is False and theirs.count_params() == ours.count_params()
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x), rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / "theirs.keras")
    back = load_model(tmp_path / "theirs.keras")
    assert back.layers[0].use_bias is False
    np.testing.assert_allclose(back.predict(x), ours.predict(x), rtol=1e-5, atol=1e-6)


def test_no_bias_onnx_export(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = no_bias_model().build(seed=1)
    model.export(tmp_path / "m.onnx")
    x = np.random.default_rng(2).random((3, 784)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-6)


def test_keras_keywords_trainable_dtype_name():
    layer = Dense(3, trainable=False, dtype="float32", name="frozen")
    assert layer.trainable is False and layer.dtype == "float32" and layer.name == "frozen"
    model = Sequential([Input((2,)), layer], backend="numpy").build(seed=0)
    assert layer.trainable_weights == [] and [w.name for w in layer.non_trainable_weights] == ["kernel", "bias"]
    config = layer.get_config()
    assert config["trainable"] is False and config["dtype"] == "float32"
    assert Dense(**config).trainable is False
    layer.trainable = True
    assert [w.name for w in layer.trainable_weights] == ["kernel", "bias"] and model.built
    assert Dense(3).dtype == "float32" and Dense(3, dtype={"class_name": "DTypePolicy",
                                                          "config": {"name": "float32"}}).dtype == "float32"


@pytest.mark.parametrize("call,pattern", [
    (lambda: Dense(3, dtype="float16"), r"Dense\(dtype\): layers compute in float32 only"),
    (lambda: Dense(3, trainable="yes"), r"Dense\(trainable\)"),
    (lambda: Dense(3, foo=1), "Unrecognized keyword arguments passed to Dense: {'foo': 1}"),
    (lambda: Dense(3, activity_regularizer="l2"), r"Dense\(activity_regularizer\): not supported"),
    (lambda: Dense(3, lora_rank=4), r"Dense\(lora_rank\)"),
    (lambda: Dense(3, quantization_config={}), r"Dense\(quantization_config\)"),
    (lambda: Dense(3, "relu", "he_normal"), r"Dense\(use_bias\): expected a bool, got 'he_normal'"),
    (lambda: Dense(3, use_bias=1), r"Dense\(use_bias\)"),
    (lambda: Dense(3).count_params(), "isn't built"),
    (lambda: Input(shape=(3,), batch_shape=(None, 3)), "both `shape` and `batch_shape`"),
    (lambda: Input(), "you must pass a `shape`"),
    (lambda: Input(shape=(3,), sparse=True), r"Input\(sparse\)"),
    (lambda: Input(shape=(3,), ragged=True), r"Input\(ragged\)"),
    (lambda: Input(shape=(3,), tensor=np.zeros((1, 3))), r"Input\(tensor\)"),
    (lambda: Input(shape=(3,), optional=True), r"Input\(optional\)"),
    (lambda: Input(shape=(3,), dtype="int32"), r"Input\(dtype\)"),
    (lambda: Input(batch_shape=(3,)), r"Input\(batch_shape\)"),
    (lambda: Input(shape=(3,), batch_size=0), r"Input\(batch_size\)"),
    (lambda: InputLayer(shape=(3,), nope=1), "Unrecognized keyword arguments passed to InputLayer"),
])
def test_bad_arguments_name_themselves(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()


def test_input_batch_shape_and_legacy_forms():
    assert Input(batch_shape=(None, 28, 28)).shape == (28, 28)
    assert Input(batch_shape=(32, 4)).batch_shape == (32, 4) and Input(shape=(4,), batch_size=8).batch_shape == (8, 4)
    assert InputLayer(input_shape=(5,)).shape == (5,) and InputLayer(batch_input_shape=(None, 6)).shape == (6,)
    model = Sequential([InputLayer(batch_shape=(None, 3)), Dense(2)], backend="numpy").build(seed=0)
    assert model.predict(np.ones((2, 3), np.float32)).shape == (2, 2)


def test_build_count_params_and_compute_output_shape_are_keras(keras):
    ours, theirs = Dense(300), keras.layers.Dense(300)
    assert not ours.built
    ours.build((None, 784))
    theirs.build((None, 784))
    assert ours.built and ours.count_params() == theirs.count_params() == 235_500
    for shape in ((None, 784), (8, 784), (None, 5, 784)):
        assert ours.compute_output_shape(shape) == tuple(theirs.compute_output_shape(shape))
    assert Dense(4, use_bias=False).compute_output_shape(input_shape=(None, 7)) == (None, 4)
    x = Input((6,))
    layer = Dense(2)
    layer(x)
    assert layer.built and layer.count_params() == 14
    assert Layer().compute_output_shape((None, 3)) == (None, 3)


class Scale(Layer):
    """A layer of one's own, Keras' way: a weight from add_weight in build; our forward/backward."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale",
                                     regularizer="l2", constraint="non_neg")
        self.calls = self.add_weight(shape=(1,), initializer="zeros", trainable=False, name="calls")

    def forward(self, backend, x, out, training=False, aux=None):
        out[...] = x * self.scale.value

    def backward(self, backend, x, y, dy, dx, aux=None):
        self.grads[0][...] = (dy * x).sum(axis=0)
        if dx is not None:
            dx[...] = dy * self.scale.value


def test_add_weight_for_a_layer_of_ones_own():
    layer = Scale(name="scale")
    model = Sequential([Input((3,)), layer, Dense(2)], backend="numpy")
    model.compile(loss="mse", optimizer="sgd", seed=0)
    assert layer.weight_names() == ["scale", "calls"] and layer.count_params() == 4
    assert [w.path for w in layer.trainable_weights] == ["scale/scale"]
    assert [w.path for w in layer.non_trainable_weights] == ["scale/calls"]
    np.testing.assert_array_equal(layer.scale.numpy(), np.ones(3, np.float32))
    assert layer.regularized() and layer.constrained()
    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    y = -np.abs(x[:, :2]) * 5  # pushes the scales down: the constraint keeps them >= 0
    model.fit(x, y, epochs=20, batch_size=8, verbose=0)
    assert (layer.scale.numpy() >= 0).all() and not np.allclose(layer.scale.numpy(), 1)
    np.testing.assert_allclose(model.predict(x), (x * layer.scale.numpy()) @ model.layers[1].get_weights()[0]
                               + model.layers[1].get_weights()[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call,pattern", [
    (lambda layer: layer.add_weight("kernel"), "`name` must be passed as a keyword argument"),
    (lambda layer: layer.add_weight((2,), "zeros", "float32", 1), "at most 3 positional arguments"),
    (lambda layer: layer.add_weight((2,), shape=(2,)), "`shape` was passed both"),
    (lambda layer: layer.add_weight(shape=(2, None)), r"add_weight\(shape\)"),
    (lambda layer: layer.add_weight(shape=(2,), dtype="int32"), r"add_weight\(dtype\)"),
    (lambda layer: layer.add_weight(shape=(2,), aggregation="max"), r"add_weight\(aggregation\)"),
    (lambda layer: layer.add_weight(shape=(2,), overwrite_with_gradient=True), "overwrite_with_gradient"),
    (lambda layer: [layer.add_weight(shape=(2,), name="w"), layer.add_weight(shape=(2,), name="w")],
     "already has a weight named 'w'"),
])
def test_add_weight_bad_arguments(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call(Layer())


class KerasCall(Layer):
    def call(self, inputs):
        return inputs * 2


def test_a_keras_call_layer_is_refused_by_name():
    with pytest.raises(TypeError, match="defines Keras' call\\(\\), which mlp_gpu does not trace"):
        Sequential([Input((3,)), KerasCall(), Dense(2)], backend="numpy").build(seed=0)


@pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
def test_no_bias_and_constraints_train_through_the_cuda_ops_as_on_numpy():
    """Every CUDA launch run by the host harness: the bias+activation kernel adds the zero vector, no
    bias-gradient launch for the layer without a bias, the constraints' xp expressions after the update."""
    def train(backend):
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, 40).astype(np.int32)
        model = Sequential([Input((6,)), Dense(5, "relu", use_bias=False, kernel_constraint=constraints.MaxNorm(0.4)),
                            Dense(3, "softmax", bias_constraint="non_neg")], backend=backend)
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=3)
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return model

    host = HostCudaOps()
    ours, ref = train(host), train("numpy")
    assert [w.shape for w in ours.get_weights()] == [(6, 5), (5, 3), (3,)]
    for got, want in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
    assert np.linalg.norm(ours.get_weights()[0], axis=0).max() <= 0.4 + 1e-6
    assert host.launches.count("bias_grad") == 2 * 3  # the second layer's only: 3 steps an epoch, 2 epochs
