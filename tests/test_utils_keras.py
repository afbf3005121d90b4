"""keras.utils and keras.backend as mlp_gpu has them: normalize and split_dataset against Keras' own code,
plot_model's diagram and file, the registry of custom objects, floatx/epsilon/backend()/get_value."""
import os
import random
import struct

import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import backend, layers, utils
from mlp_gpu.plots import model_diagram

os.environ.setdefault("KERAS_BACKEND", "torch")


# ---- normalize ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [2, 1, np.inf, 3, 0.5])
@pytest.mark.parametrize("axis", [-1, 1])
def test_normalize_matches_keras(order, axis):
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    x[2] = 0  # a zero row: its norm counts as 1
    ours, theirs = utils.normalize(x, axis, order), keras.utils.normalize(x, axis, order)
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_normalize_other_axes_and_bad_arguments():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4) - 5
    for axis in (0, 1, 2, -2):
        nonzero = np.linalg.norm(x, axis=axis) > 0
        np.testing.assert_allclose(np.linalg.norm(utils.normalize(x, axis), axis=axis)[nonzero], 1.0)
    assert utils.normalize([3, 4]).tolist() == [0.6, 0.8]  # integers come back as float64
    with pytest.raises(ValueError, match="axis"):
        utils.normalize(x, axis=3)
    with pytest.raises(ValueError, match="order"):
        utils.normalize(x, order="fro")
    with pytest.raises(TypeError, match="numeric"):
        utils.normalize(np.array(["a"]))


# ---- split_dataset ------------------------------------------------------------------------------------
SIZES = [(0.8, None), (None, 0.25), (7, None), (None, 3), (0.5, 0.3), (4, 4), (0.33, None), (2, 0.5)]


@pytest.mark.parametrize("left, right", SIZES)
def test_split_dataset_sizes_and_rows_as_keras(left, right):
    dataset_utils = pytest.importorskip("keras.src.utils.dataset_utils")
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    (xl, yl), (xr, yr) = utils.split_dataset((x, y), left, right, shuffle=True, seed=3)
    n_left, n_right = dataset_utils._rescale_dataset_split_sizes(left, right, 10)
    assert (len(xl), len(xr)) == (len(yl), len(yr)) == (n_left, n_right)
    samples = list(zip(x, y))  # Keras' arrays path: a list of samples, random.seed(seed), random.shuffle
    state = random.getstate()
    random.seed(3)
    random.shuffle(samples)
    random.setstate(state)
    np.testing.assert_array_equal(xl, [s[0] for s in samples[:n_left]])
    np.testing.assert_array_equal(yr, [s[1] for s in samples[-n_right:]])


@pytest.mark.parametrize("left, right", [(None, None), (0, None), (10, None), (1.0, None), (0.6, 0.6), (6, 6),
                                         ("5", None), (0.01, None)])
def test_split_dataset_refuses_what_keras_refuses(left, right):
    dataset_utils = pytest.importorskip("keras.src.utils.dataset_utils")
    if left is not None or right is not None:
        with pytest.raises((TypeError, ValueError)):
            dataset_utils._rescale_dataset_split_sizes(left, right, 10)
    with pytest.raises((TypeError, ValueError)):
        utils.split_dataset(np.zeros((10, 2)), left, right)


def test_split_dataset_keeps_the_order_without_shuffle_and_checks_its_input():
    x = np.arange(10)
    left, right = utils.split_dataset(x, left_size=0.6)
    assert left.tolist() == [0, 1, 2, 3, 4, 5] and right.tolist() == [6, 7, 8, 9]
    state = random.getstate()
    utils.split_dataset(x, 5, shuffle=True, seed=1)
    assert random.getstate() == state  # the global generator is left alone
    with pytest.raises(ValueError, match="differ in length"):
        utils.split_dataset((np.zeros(3), np.zeros(4)), 1)
    with pytest.raises(TypeError, match="dataset"):
        utils.split_dataset({"x": x}, 1)
    with pytest.raises(ValueError, match="preferred_backend"):
        utils.split_dataset(x, 1, preferred_backend="torch")


# ---- plot_model ---------------------------------------------------------------------------------------
def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _stack(n):
    return mlp_gpu.Sequential([layers.Input((8,))] + [layers.Dense(4, "relu") for _ in range(n)] + [layers.Dense(2)],
                              backend="numpy").build()


def test_plot_model_writes_a_png_one_box_per_layer(tmp_path):
    pytest.importorskip("matplotlib")
    for n in (1, 4):
        utils.plot_model(_stack(n), tmp_path / f"m{n}.png", dpi=50)
    (w1, h1), (w4, h4) = _png_size(tmp_path / "m1.png"), _png_size(tmp_path / "m4.png")
    assert w1 == w4 and h4 > 2 * h1  # boxes stacked top to bottom: three more layers, a taller picture
    utils.plot_model(_stack(4), tmp_path / "wide.png", rankdir="LR", dpi=50)
    w, h = _png_size(tmp_path / "wide.png")
    assert w > 3 * h
    utils.plot_model(_stack(1), tmp_path / "m.svg")
    assert b"<svg" in (tmp_path / "m.svg").read_bytes()[:400]


def test_plot_model_labels_boxes_as_keras():
    model = _stack(1)
    layers_, inputs, edges = model_diagram(model)
    assert [type(layer).__name__ for layer in layers_] == ["Dense", "Dense"] and edges == [(0, 1)]
    assert inputs == [[(8,)], [(4,)]]
    x = layers.Input((5,))
    a, b = layers.Dense(3)(x), layers.Dense(2, "relu")(x)
    graph = mlp_gpu.Model(x, layers.Dense(1)(layers.Concatenate()([a, b])))
    layers_, inputs, edges = model_diagram(graph)
    names = [layer.name for layer in layers_]
    assert len(layers_) == 5 and sorted(edges) == sorted([(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)])
    assert inputs[names.index(graph.layers[3].name)] == [(3,), (2,)]


def test_plot_model_refuses_bad_arguments(tmp_path):
    model = _stack(1)
    for kwargs, error in ((dict(rankdir="XY"), "rankdir"), (dict(dpi=0), "dpi"), (dict(show_shapes=1), "show_shapes"),
                          (dict(splines="wavy"), "splines"), (dict(layer_range=["a", "b"]), "layer_range"),
                          (dict(colour=True), "unrecognized")):
        with pytest.raises((TypeError, ValueError), match=error):
            utils.plot_model(model, tmp_path / "x.png", **kwargs)
    unbuilt = mlp_gpu.Sequential([layers.Dense(2)], backend="numpy")
    with pytest.raises(ValueError, match="not yet been built"):
        utils.plot_model(unbuilt, tmp_path / "x.png")
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="to_file"):
        utils.plot_model(model, tmp_path / "x.nosuchformat")


# ---- the registry of custom objects -------------------------------------------------------------------
def test_register_keras_serializable_and_get_custom_objects_as_keras():
    @utils.register_keras_serializable(package="Tests")
    def twice(x):
        return 2 * x

    assert utils.get_custom_objects()["Tests>twice"] is twice and utils.get_registered_name(twice) == "Tests>twice"
    assert utils.get_custom_object("Tests>twice") is twice
    utils.get_custom_objects()["plain"] = twice  # the tf.keras idiom: the live dict, filled by hand
    assert utils.get_custom_object("plain") is twice
    with utils.custom_object_scope({"plain": len}):
        assert utils.get_custom_object("plain") is len  # a scope comes first, as in Keras
    del utils.get_custom_objects()["plain"], utils.get_custom_objects()["Tests>twice"]
    with pytest.raises(ValueError, match="get_config"):
        utils.register_keras_serializable()(type("NoConfig", (), {}))


# ---- keras.backend ------------------------------------------------------------------------------------
def test_backend_settings_as_keras():
    keras = pytest.importorskip("keras")
    assert backend.floatx() == keras.backend.floatx() == "float32"
    assert backend.epsilon() == keras.backend.epsilon() == 1e-7
    backend.set_floatx("float32")
    with pytest.raises(ValueError, match="float32 only"):
        backend.set_floatx("float64")
    with pytest.raises(ValueError, match="unknown floatx"):
        backend.set_floatx("float8")
    backend.set_epsilon(1e-5)
    try:
        assert backend.epsilon() == 1e-5
    finally:
        backend.set_epsilon(1e-7)
    for bad in (0, -1.0, float("nan"), "1e-7", True):
        with pytest.raises(ValueError, match="set_epsilon"):
            backend.set_epsilon(bad)


def test_backend_name_is_the_default_backends(monkeypatch):
    monkeypatch.setenv("MLP_GPU_BACKEND", "numpy")
    assert backend.backend() == "numpy"
    monkeypatch.delenv("MLP_GPU_BACKEND")
    assert backend.backend() == mlp_gpu.get_backend().name


def test_get_value_and_set_value_on_the_learning_rate():
    model = _stack(1)
    model.compile(optimizer=mlp_gpu.SGD(0.1), loss="mse")
    assert backend.get_value(model.optimizer.learning_rate) == pytest.approx(0.1)
    backend.set_value(model.optimizer.learning_rate, 0.02)  # Géron's learning-rate finder
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)
    array = np.zeros(3, np.float32)
    backend.set_value(array, [1, 2, 3])
    assert backend.get_value(array).tolist() == [1, 2, 3]
    with pytest.raises(TypeError, match="set_value"):
        backend.set_value(0.5, 1.0)
    with pytest.raises(ValueError, match="shape"):
        backend.set_value(array, [1, 2])


@pytest.mark.parametrize("x, num_classes", [([0, 2, 1], None), ([[1], [0]], 3), (np.array([[0, 1], [2, 0]]), 4),
                                            ([1.0, 2.0], None), ([], 3)])
def test_to_categorical_matches_keras(x, num_classes):
    keras = pytest.importorskip("keras")
    ours, theirs = utils.to_categorical(x, num_classes), keras.utils.to_categorical(x, num_classes)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
