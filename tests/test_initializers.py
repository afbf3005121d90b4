"""Initializers new to Keras 3.15's surface: input_axes/output_axes on the VarianceScaling family,
Orthogonal and Identity: signatures, configs, fans and draws against Keras."""
import inspect
import math

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential, initializers

FAMILY = ["VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal"]


@pytest.fixture(scope="module")
def keras(request):
    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_BACKEND", "torch")
    request.addfinalizer(mp.undo)
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name", FAMILY + ["Orthogonal", "Identity"])
def test_signature_and_config_are_keras(keras, name):
    ours, theirs = getattr(initializers, name), getattr(keras.initializers, name)
    assert inspect.signature(ours) == inspect.signature(theirs)
    kwargs = {"Orthogonal": {"gain": 0.5, "seed": 3}, "Identity": {"gain": 2.0}}.get(
        name, {"seed": 4, "input_axes": [0], "output_axes": [1, 2]})
    assert ours(**kwargs).get_config() == theirs(**kwargs).get_config()
    assert ours().get_config() == theirs().get_config()


def test_names_and_aliases(keras):
    assert initializers.identity is initializers.Identity and initializers.orthogonal is initializers.Orthogonal
    for name in ("identity", "orthogonal", "Identity", "Orthogonal", "OrthogonalInitializer"):
        assert type(initializers.get(name)).__name__ == type(keras.initializers.get(name)).__name__


@pytest.mark.parametrize("shape,input_axes,output_axes", [
    ((3, 4, 5), [0, 1], [2]), ((3, 4, 5), [2], [0]), ((6, 7), [-1], [0]), ((3, 4, 5), None, None),
    ((3, 4, 5), [0], None), ((9,), None, None), ((), None, None),
])
def test_fans_are_keras(keras, shape, input_axes, output_axes):
    compute_fans = keras.src.initializers.random_initializers.compute_fans
    assert initializers.compute_fans(shape, input_axes, output_axes) == compute_fans(shape, input_axes, output_axes)


def test_axes_change_the_draw_as_keras_formula_says():
    shape = (40, 30, 20)
    init = initializers.VarianceScaling(scale=2.0, mode="fan_in", distribution="uniform", input_axes=[2],
                                        output_axes=[0, 1], seed=1)
    values = init(shape)
    limit = math.sqrt(3.0 * 2.0 / 20)  # fan_in = shape[2]
    assert np.abs(values).max() <= limit and np.abs(values).max() > 0.99 * limit
    wide = initializers.HeUniform(seed=1, input_axes=[0, 1], output_axes=[2])(shape)  # fan_in = 1200
    assert np.abs(wide).max() <= math.sqrt(6.0 / 1200)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 3, 7)])
def test_orthogonal_is_orthogonal_and_scaled(keras, shape):
    gain = 1.5
    ours = initializers.Orthogonal(gain=gain, seed=2)(shape)
    theirs = keras.ops.convert_to_numpy(keras.initializers.Orthogonal(gain=gain, seed=2)(shape))
    assert ours.shape == theirs.shape == shape
    for q in (ours.reshape(-1, shape[-1]), theirs.reshape(-1, shape[-1])):  # the property both satisfy
        rows, cols = q.shape
        gram = q.T @ q if rows >= cols else q @ q.T
        np.testing.assert_allclose(gram, gain ** 2 * np.eye(min(rows, cols)), atol=1e-5)
    np.testing.assert_array_equal(ours, initializers.Orthogonal(gain=gain, seed=2)(shape))  # a seed repeats


def test_identity_equals_keras(keras):
    for shape in ((3, 3), (2, 5), (5, 2)):
        np.testing.assert_array_equal(initializers.Identity(gain=0.5)(shape, np.float32),
                                      keras.ops.convert_to_numpy(keras.initializers.Identity(gain=0.5)(shape)))


def test_new_initializers_in_a_dense_layer():
    model = Sequential([Input((4,)), Dense(4, kernel_initializer="identity", bias_initializer="zeros"),
                        Dense(3, kernel_initializer=initializers.Orthogonal(seed=0))], backend="numpy").build(seed=0)
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], np.eye(4, dtype=np.float32))
    kernel = model.layers[1].get_weights()[0]
    np.testing.assert_allclose(kernel.T @ kernel, np.eye(3), atol=1e-5)


@pytest.mark.parametrize("call,pattern", [
    (lambda: initializers.Orthogonal()((5,)), "at least two-dimensional"),
    (lambda: initializers.Identity()((2, 2, 2)), "two-dimensional"),
    (lambda: initializers.Orthogonal(gain="big"), r"Orthogonal\(gain\)"),
    (lambda: initializers.Identity(gain=None), r"Identity\(gain\)"),
    (lambda: initializers.GlorotUniform(input_axes=0), r"GlorotUniform\(input_axes\)"),
    (lambda: initializers.VarianceScaling(output_axes=["a"]), r"VarianceScaling\(output_axes\)"),
    (lambda: initializers.HeNormal(input_axes=[5], output_axes=[0])((2, 3)), "out of range"),
])
def test_bad_arguments_name_themselves(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()
