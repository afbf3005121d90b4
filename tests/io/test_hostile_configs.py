"""Configs and files from strangers that name numbers or types (a review of issue #25's new readers): each
is refused with an error naming the field before anything is allocated; and what a config carries about
a layer (trainable, its regularizers) survives a round trip."""
import zipfile

import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import Dense, Input, Sequential
from mlp_gpu.data.idx import IDXError
from mlp_gpu.datasets.cache import read_npz
from mlp_gpu.layers import BatchNormalization, Flatten, Reshape
from mlp_gpu.metrics import AUC, Precision
from mlp_gpu.saving import deserialize_keras_object


@pytest.mark.parametrize("shape", [[16, 2**60 + 49], [2**32, 2**32, -1], [0, -1], [-2]])
def test_reshape_refuses_dimensions_no_sample_has(shape):
    """2**60 + 49 times 16 wraps to 784 in int64: Python ints and a bound per dimension refuse it."""
    with pytest.raises(ValueError, match=r"Reshape\(target_shape\)"):
        Sequential([Input((784,)), Reshape(shape), Flatten(), Dense(2)], backend="numpy").build()


def test_reshape_refusal_reaches_model_from_json():
    model = Sequential([Input((4,)), Reshape((2, 2)), Flatten(), Dense(2)], backend="numpy")
    text = model.to_json().replace("[2, 2]", f"[16, {2**60 + 49}]")
    with pytest.raises(ValueError, match="target_shape"):
        mlp_gpu.models.model_from_json(text)


@pytest.mark.parametrize("make", [lambda: AUC(num_thresholds=10**10), lambda: AUC(thresholds=[0.5] * 2_000_000),
                                  lambda: Precision(thresholds=[0.5] * 2_000_000),
                                  lambda: mlp_gpu.metrics.get({"class_name": "AUC",
                                                               "config": {"num_thresholds": 10**10}})])
def test_threshold_counts_are_bounded(make):
    with pytest.raises(ValueError, match="thresholds"):
        make()


@pytest.mark.parametrize("config", [{"value": 0, "dtype": "S1000000000"}, {"value": [1], "dtype": "O"},
                                    {"dtype": "float32"}, "x", {"value": ["a"], "dtype": "float32"}])
def test_numpy_values_in_configs_are_numbers_only(config):
    with pytest.raises(ValueError, match="__numpy__"):
        deserialize_keras_object({"class_name": "__numpy__", "config": config})
    assert deserialize_keras_object({"class_name": "__numpy__", "config": {"value": [1, 2], "dtype": "int32"}}
                                    ).dtype == np.int32


@pytest.mark.parametrize("config", [None, [1], {"a": 1}])
def test_a_function_config_is_a_name(config):
    with pytest.raises(ValueError, match="function's config is its name"):
        deserialize_keras_object({"class_name": "function", "config": config})


def test_an_npz_whose_header_lies_about_its_shape_is_refused_before_numpy_allocates(tmp_path):
    path = tmp_path / "mnist.npz"
    good = {k: np.zeros((2, 28, 28) if k.startswith("x") else 2, np.uint8) for k in
            ("x_train", "y_train", "x_test", "y_test")}
    np.savez(path, **good)
    (x, y), _ = read_npz(path)
    assert x.shape == (2, 28, 28)
    lying = tmp_path / "lying.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(lying, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "x_train.npy":  # same bytes, a header claiming 100,000 x 1000 x 1000
                data = data.replace(b"(2, 28, 28)", b"(100000, 1000, 1000)")
            dst.writestr(info.filename, data)
    with pytest.raises(IDXError, match="x_train.npy declares"):
        read_npz(lying)


def _frozen_regularized():
    model = Sequential([Input((4,)), Dense(5, "relu", kernel_regularizer=mlp_gpu.regularizers.L2(0.5), name="a"),
                        Dense(3, "softmax", bias_regularizer="l1", name="b")], backend="numpy")
    model.layers[0].trainable = False
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("suffix", [".keras", ".h5", "json"])
def test_trainable_flags_and_regularizers_survive_every_form(tmp_path, suffix):
    model = _frozen_regularized()
    if suffix == "json":
        again = mlp_gpu.models.model_from_json(model.to_json())
    else:
        model.save(tmp_path / f"m{suffix}")
        again = mlp_gpu.load_model(tmp_path / f"m{suffix}")
    assert [layer.trainable for layer in again.layers] == [False, True]
    assert again.layers[0].kernel_regularizer.get_config() == {"l2": 0.5}
    assert again.layers[1].bias_regularizer.get_config() == {"l1": 0.01}


def test_a_frozen_layers_penalty_is_not_in_the_loss_as_in_keras():
    """Keras sums regularizers over trainable weights only: a frozen layer's L2 adds nothing."""
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    y = np.arange(16) % 3
    frozen = _frozen_regularized()
    loss = frozen.evaluate(x, y, verbose=0)
    plain = Sequential([Input((4,)), Dense(5, "relu"), Dense(3, "softmax", bias_regularizer="l1")], backend="numpy")
    plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    plain.set_weights(frozen.get_weights())
    assert loss == pytest.approx(plain.evaluate(x, y, verbose=0), rel=1e-6)


def test_a_keras_file_of_batchnorm_and_plain_sgd_loads(tmp_path):
    """SGD keeps no slots: the empty state is the trainable buffer's size, not count_params' (with the
    moving statistics)."""
    model = Sequential([Input((4,)), Dense(5, "relu"), BatchNormalization(), Dense(3, "softmax")], backend="numpy")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(1).normal(size=(32, 4)).astype(np.float32)
    model.fit(x, np.arange(32) % 3, verbose=0)
    model.save(tmp_path / "bn.keras")
    again = mlp_gpu.load_model(tmp_path / "bn.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert mlp_gpu.load_model(tmp_path / "bn.keras", compile=False).optimizer is None
