"""The activation layers (Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax) against Keras 3: signatures,
numbers, get_config; gradients against float64 central differences on the NumPy backend; in Sequential and
functional models; saved and loaded; bad arguments refused; the same training through the host harness."""
import inspect

import numpy as np
import pytest

from mlp_gpu import SGD, Dense, Input, Sequential, initializers, losses, ops
from mlp_gpu.layers import ELU, Activation, Add, LeakyReLU, PReLU, ReLU, Softmax, layer_from_config
from mlp_gpu.models import Model, load_model

from ..conftest import blobs, central_differences
from ..harness.host_ops import HostCudaOps, compiler

# (class name, keyword arguments): Keras' defaults (table entries) and other parameters (traced kernels)
CASES = [("Activation", dict(activation="relu")), ("Activation", dict(activation="gelu")),
         ("Activation", dict(activation="swish")), ("Activation", dict(activation="mish")),
         ("Activation", dict(activation="hard_silu")), ("Activation", dict(activation="selu")),
         ("Activation", dict(activation="log_softmax")), ("Activation", dict(activation="tanh")),
         ("ReLU", {}), ("ReLU", dict(max_value=6.0)), ("ReLU", dict(max_value=1.5)),
         ("ReLU", dict(negative_slope=0.2)), ("ReLU", dict(threshold=0.3)),
         ("ReLU", dict(max_value=2.0, negative_slope=0.1, threshold=0.5)),
         ("LeakyReLU", {}), ("LeakyReLU", dict(negative_slope=0.2)), ("LeakyReLU", dict(negative_slope=1.5)),
         ("ELU", {}), ("ELU", dict(alpha=0.5)), ("Softmax", {}),
         ("PReLU", {}), ("PReLU", dict(alpha_initializer="ones")), ("PReLU", dict(shared_axes=[1]))]
OURS = {"Activation": Activation, "ReLU": ReLU, "LeakyReLU": LeakyReLU, "PReLU": PReLU, "ELU": ELU,
        "Softmax": Softmax}
IDS = [f"{c}-{k}" for c, k in CASES]


@pytest.fixture(scope="module")
def keras(request):
    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_BACKEND", "torch")
    request.addfinalizer(mp.undo)
    return pytest.importorskip("keras")


def inputs(rows=6, cols=5, seed=0):
    """Away from the kinks (0, thresholds, max values): central differences must not straddle one."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.05, 3.0, (rows, cols)) * rng.choice([-1, 1], (rows, cols))
    for kink in (0.3, 0.5, 1.5, 2.0):
        x[np.abs(np.abs(x) - kink) < 0.02] += 0.05
    return x


def through(layer, x, backend="numpy"):
    """layer(x) in a model: Input, the layer, then an identity Dense (a model ends in a Dense)."""
    cols = x.shape[1]
    model = Sequential([Input((cols,)), layer, Dense(cols)], backend=backend)
    model.build(seed=0)
    model.layers[-1].set_weights([np.eye(cols), np.zeros(cols)])
    return model.predict(x.astype(np.float32), verbose=0)


@pytest.mark.parametrize("name", list(OURS))
def test_signature_is_keras(keras, name):
    ours = inspect.signature(OURS[name].__init__).parameters
    theirs = inspect.signature(getattr(keras.layers, name).__init__).parameters
    assert list(ours.values()) == list(theirs.values())


@pytest.mark.parametrize("cls,kwargs", CASES, ids=IDS)
def test_numbers_and_config_are_keras(keras, cls, kwargs):
    x = inputs(cols=7).astype(np.float32)
    x[0, :4] = [-30.0, 30.0, 0.0, -1e-3]  # awkward values too
    ours = OURS[cls](**kwargs)
    theirs = getattr(keras.layers, cls)(**kwargs)
    got = through(ours, x)
    want = keras.ops.convert_to_numpy(theirs(x))
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
    mine, keras_config = ours.get_config(), theirs.get_config()
    for key in set(keras_config) - {"name", "dtype"}:  # names are drawn per model; dtype is the model's
        assert mine[key] == keras_config[key], key


@pytest.mark.parametrize("cls,kwargs", CASES, ids=IDS)
def test_config_round_trip(cls, kwargs):
    layer = OURS[cls](**kwargs, name="act")
    again = layer_from_config(cls, layer.get_config())
    assert again.get_config() == layer.get_config()
    x = inputs(cols=4).astype(np.float32)
    np.testing.assert_array_equal(through(again, x), through(layer, x))


def _loss(model, x, y, ws):
    acc = np.zeros(2)
    model.forward(x, ws, logits=True)
    model.loss_and_count(ws, y, acc)
    return acc[0] / x.shape[0]


@pytest.mark.parametrize("cls,kwargs", CASES + [("Dense", dict(activation=a)) for a in
                                                ("gelu", "silu", "mish", "hard_silu", "log_softmax")],
                         ids=IDS + ["Dense-gelu", "Dense-silu", "Dense-mish", "Dense-hard_silu", "Dense-log_softmax"])
def test_gradients_match_finite_differences(cls, kwargs):
    """Every weight's gradient and the input's, float64 on the NumPy backend (PReLU's alpha among them)."""
    rng = np.random.default_rng(1)
    middle = Dense(6, **kwargs) if cls == "Dense" else OURS[cls](**kwargs)
    model = Sequential([Input((5,)), Dense(6), middle, Dense(3)], backend="numpy", dtype="float64")
    model.compile(loss="mse", optimizer="sgd", seed=0)
    model.params[...] = rng.uniform(0.2, 1.0, model.params.size) * rng.choice([-1, 1], model.params.size)
    x, y = inputs(rows=7), rng.normal(size=(7, 3))
    ws = model.workspace(x.shape[0])
    _loss(model, x, y, ws)
    model.backward(x, ws)
    analytic = model.grads.copy()
    numeric = central_differences(lambda: _loss(model, x, y, ws), model.params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_prelu_alpha_is_a_trained_weight_per_unit():
    layer = PReLU(alpha_initializer=initializers.Constant(0.25))
    model = Sequential([Input((4,)), Dense(5), layer, Dense(2, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1), seed=0)
    assert [w.name for w in layer.weights] == ["alpha"] and layer.get_weights()[0].shape == (5,)
    np.testing.assert_array_equal(layer.get_weights()[0], np.full(5, 0.25, np.float32))
    x, y = blobs(n=64, features=4, classes=2)
    model.fit(-np.abs(x), y, epochs=3, batch_size=16, verbose=0)  # negative inputs reach alpha
    assert np.any(layer.get_weights()[0] != 0.25)  # a unit whose input went negative moved its alpha
    shared = PReLU(shared_axes=[1])
    Sequential([Input((4,)), shared, Dense(2)], backend="numpy").build(seed=0)
    assert shared.get_weights()[0].shape == (1,)


def test_functional_model_and_sequential_agree():
    x = inputs(rows=9, cols=5).astype(np.float32)
    layers = lambda: [Dense(6, name="d1"), LeakyReLU(0.1, name="a"), Dense(4, name="d2"),  # noqa: E731
                      PReLU(name="p"), ELU(0.7, name="e"), Dense(3, "softmax", name="out")]
    seq = Sequential([Input((5,))] + layers(), backend="numpy")
    seq.build(seed=4)
    inp = Input(shape=(5,))
    t = inp
    fn_layers = layers()
    for layer in fn_layers:
        t = layer(t)
    model = Model(inp, t, backend="numpy")
    model.build(seed=4)
    model.set_weights(seq.get_weights())
    np.testing.assert_allclose(model.predict(x, verbose=0), seq.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("suffix", [".h5"])
def test_save_and_load(tmp_path, suffix):
    x, y = blobs(n=40, features=5)
    model = Sequential([Input((5,)), Dense(6), ReLU(max_value=2.0, name="r"), Dense(6), PReLU(name="p"),
                        Activation("swish", name="s"), Dense(6), Softmax(name="sm"), Dense(3, "softmax")],
                       backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05), seed=2)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / f"m{suffix}"
    model.save(path)
    again = load_model(path, backend="numpy")
    assert [layer.get_config() for layer in again.layers] == [layer.get_config() for layer in model.layers]
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_custom_activation_function_is_traced():
    def my_act(x):
        return ops.square(x)
    layer = Activation(my_act)
    x = inputs(cols=4).astype(np.float32)
    np.testing.assert_allclose(through(layer, x), x * x, rtol=1e-6)
    assert layer.get_config()["activation"] == "my_act"


def test_bad_arguments_name_the_argument():
    cases = [(lambda: ReLU(max_value=-1.0), r"ReLU\(max_value\)"), (lambda: ReLU(negative_slope=-0.1),
             r"ReLU\(negative_slope\)"), (lambda: ReLU(threshold=None), r"ReLU\(threshold\)"),
             (lambda: LeakyReLU(negative_slope=-1), r"LeakyReLU\(negative_slope\)"),
             (lambda: ELU(alpha="1"), r"ELU\(alpha\)"), (lambda: Softmax(axis=0), r"Softmax\(axis\)"),
             (lambda: PReLU(alpha_constraint="non_neg"), r"PReLU\(alpha_constraint\)"),
             (lambda: PReLU(shared_axes=[0]), r"PReLU\(shared_axes\)"),
             (lambda: PReLU(trainable=False), r"PReLU\(trainable=False\)"),
             (lambda: ReLU(dtype="float16"), r"ReLU\(dtype\)"), (lambda: ReLU(trainable="no"), r"ReLU\(trainable\)"),
             (lambda: Activation("no_such"), r"Activation\(activation\)"),
             (lambda: Activation(3), "activation")]
    for make, match in cases:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(TypeError, match=r"ReLU: unexpected keyword arguments \['foo'\]"):
        ReLU(foo=1)
    with pytest.raises(ValueError, match="Flatten"):
        Sequential([Input((2, 3)), Softmax(), Dense(2)], backend="numpy").build()
    with pytest.raises(ValueError, match="Flatten"):
        Sequential([Input((2, 3)), PReLU(), Dense(2)], backend="numpy").build()


def test_keras_base_keywords_are_taken():
    layer = ReLU(name="r", dtype="float32", trainable=True)
    assert layer.name == "r" and layer.get_config()["trainable"] is True
    assert LeakyReLU(alpha=0.25).negative_slope == 0.25  # Keras' older name


@pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
def test_trains_the_same_through_the_harness():
    """The table kernels, the traced kernels and PReLU's xp math: the same weights as NumPy after training."""
    x, y = blobs(n=40, features=5)
    weights = []
    for backend in ("numpy", HostCudaOps()):
        model = Sequential([Input((5,)), Dense(6), ReLU(max_value=2.0, threshold=0.1), Dense(6), PReLU(),
                            Activation("gelu"), Dense(6), LeakyReLU(), ELU(0.5), Dense(3, "softmax")],
                           backend=backend)
        model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05), seed=3)
        model.fit(x, y, batch_size=8, epochs=2, seed=1, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_onnx_export_matches_ours(tmp_path):
    """Every activation layer exports (io/onnx_activation.py): table entries, traced parameters, PReLU's slope."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    x, y = blobs(n=60, features=5)
    model = Sequential([Input((5,)), Dense(6), ReLU(max_value=2.0, threshold=0.1), Dense(6), PReLU(),
                        Activation("swish"), Dense(6), LeakyReLU(), ELU(0.5), Activation("gelu"), Dense(6),
                        Softmax(), Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05), seed=3)
    model.fit(x, y, batch_size=8, epochs=2, seed=1, verbose=0)
    model.export(tmp_path / "m.onnx", verbose=False)
    onnx.checker.check_model(onnx.load(tmp_path / "m.onnx"), full_check=True)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_keras_files_both_ways(keras, tmp_path):
    """A .keras file of ours loads in Keras with the same predictions, and Keras' own file loads here (needs
    io/keras_zip's TO_KERAS/FROM_KERAS entries from layers/activation.py's keras_config and from_keras). The
    layers carry Keras' weight-file names (p_re_lu: its class in Keras' snake case)."""
    x, y = blobs(n=40, features=5)
    model = Sequential([Input((5,)), Dense(6), ReLU(max_value=2.0, name="re_lu"), Dense(6), PReLU(name="p_re_lu"),
                        Activation("swish"), Dense(6), LeakyReLU(0.1, name="leaky_re_lu"), ELU(0.5),
                        Softmax(), Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05), seed=2)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x)), model.predict(x, verbose=0), atol=1e-6)
    theirs.save(tmp_path / "theirs.keras")
    again = load_model(tmp_path / "theirs.keras", backend="numpy")
    assert [type(layer).__name__ for layer in again.layers] == [type(layer).__name__ for layer in model.layers]
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("make", [ReLU, lambda: PReLU(alpha_initializer="ones"), Softmax, lambda: ELU(0.5)],
                         ids=["ReLU", "PReLU", "Softmax", "ELU"])
def test_graph_output_layer_is_applied_before_a_logits_loss(keras, make):
    """A graph model ending in an activation layer: the loss reads the layer's output (Keras' semantics),
    also when the loss takes logits and the model passes its output override."""
    x, y = blobs(n=32, features=5)
    inp = Input(shape=(5,))
    out = make()(Add()([Dense(3)(inp), Dense(3)(inp)]))
    model = Model(inp, out, backend="numpy")
    model.compile(loss=losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="sgd", seed=0)
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model.predict(x, verbose=0))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(float(keras.ops.convert_to_numpy(want)), rel=1e-5)
