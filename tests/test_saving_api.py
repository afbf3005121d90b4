"""keras.saving as mlp_gpu has it: save_model/load_model, Keras' serialized form of objects and back, the
registry of custom objects across a saved file, and keras.regularizers.serialize/deserialize."""
import json
import os

import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import layers, regularizers, saving

os.environ.setdefault("KERAS_BACKEND", "torch")


def _model(loss="mse"):
    m = mlp_gpu.Sequential([layers.Input((4,)), layers.Dense(3, "relu"), layers.Dense(2)], backend="numpy")
    m.compile(optimizer=mlp_gpu.optimizers.Adam(0.01), loss=loss)
    return m


def _fit(m):
    rng = np.random.default_rng(0)
    m.fit(rng.normal(size=(32, 4)).astype(np.float32), rng.normal(size=(32, 2)).astype(np.float32), epochs=2,
          verbose=0, seed=0)
    return m


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_save_model_and_load_model_round_trip(tmp_path, suffix):
    m = _fit(_model())
    path = tmp_path / f"m{suffix}"
    saving.save_model(m, path)
    back = saving.load_model(path)
    for a, b in zip(m.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(m.predict(x), back.predict(x))
    with pytest.raises(FileExistsError, match="overwrite=False"):
        saving.save_model(m, path, overwrite=False)
    saving.save_model(m, path, overwrite=True, include_optimizer=True, save_format="h5")


@pytest.mark.parametrize("kwargs, error", [(dict(zipped=False), "zipped"), (dict(include_optimizer=False), "include"),
                                           (dict(colour=1), "not supported"), (dict(overwrite="no"), "overwrite")])
def test_save_model_refuses_what_it_cannot_do(tmp_path, kwargs, error):
    with pytest.raises((TypeError, ValueError), match=error):
        saving.save_model(_model(), tmp_path / "m.h5", **kwargs)
    with pytest.raises(ValueError, match="save_format"):
        saving.save_model(_model(), tmp_path / "m.bin", save_format="tf")


def test_registered_custom_loss_loads_without_custom_objects(tmp_path):
    @saving.register_keras_serializable(package="SavingTest")
    def half_mse(y_true, y_pred):
        return 0.5 * mlp_gpu.ops.mean(mlp_gpu.ops.square(y_true - y_pred), axis=-1)

    try:
        m = _fit(_model(loss=half_mse))
        m.save(tmp_path / "m.h5")
        back = saving.load_model(tmp_path / "m.h5")  # no custom_objects: the registry resolves the name
        assert back.loss.fn is half_mse
    finally:
        del saving.get_custom_objects()["SavingTest>half_mse"]
    with pytest.raises(ValueError, match="SavingTest>half_mse"):
        saving.load_model(tmp_path / "m.h5")


# ---- serialize_keras_object / deserialize_keras_object ------------------------------------------------
def test_serialized_form_is_keras_for_builtin_objects():
    keras = pytest.importorskip("keras")
    pairs = [(regularizers.L1L2(0.1, 0.2), keras.regularizers.L1L2(0.1, 0.2)),
             (mlp_gpu.initializers.HeNormal(seed=1), keras.initializers.HeNormal(seed=1)),
             (mlp_gpu.losses.MeanSquaredError(), keras.losses.MeanSquaredError())]
    for ours, theirs in pairs:
        a, b = saving.serialize_keras_object(ours), keras.saving.serialize_keras_object(theirs)
        assert {k: a[k] for k in ("module", "class_name", "registered_name")} == \
               {k: b[k] for k in ("module", "class_name", "registered_name")}
    assert saving.serialize_keras_object(regularizers.L1L2(0.1, 0.2)) == \
        keras.saving.serialize_keras_object(keras.regularizers.L1L2(0.1, 0.2))
    assert saving.serialize_keras_object(mlp_gpu.losses.mean_squared_error) == \
        keras.saving.serialize_keras_object(keras.losses.mean_squared_error)
    for value in (3, "x", None, [1, (2, 3)], {"a": 1}):
        assert saving.serialize_keras_object(value) == keras.saving.serialize_keras_object(value)


def test_deserialize_reads_configs_keras_wrote():
    keras = pytest.importorskip("keras")
    for theirs in (keras.regularizers.L2(0.5), keras.initializers.RandomNormal(0.0, 2.0, seed=3),
                   keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.5)):
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(theirs)))
        ours = saving.deserialize_keras_object(config)
        assert type(ours).__name__ == type(theirs).__name__
        for key, value in ours.get_config().items():
            if key in theirs.get_config():
                assert theirs.get_config()[key] == pytest.approx(value), key


def test_round_trips_through_json():
    objects = [layers.Dense(3, "relu", name="d"), regularizers.L2(0.25), mlp_gpu.optimizers.Adam(0.002),
               mlp_gpu.losses.MeanSquaredError(), mlp_gpu.initializers.GlorotUniform(seed=4),
               mlp_gpu.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9), mlp_gpu.metrics.Accuracy()]
    for obj in objects:
        config = json.loads(json.dumps(saving.serialize_keras_object(obj)))
        back = saving.deserialize_keras_object(config)
        assert type(back) is type(obj) and back.get_config() == obj.get_config()
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    back = saving.deserialize_keras_object(json.loads(json.dumps(saving.serialize_keras_object(
        {"a": [array, 2], "b": None}))))
    assert back["b"] is None and back["a"][1] == 2 and back["a"][0].dtype == np.float32
    np.testing.assert_array_equal(back["a"][0], array)
    model = _model()
    clone = saving.deserialize_keras_object(saving.serialize_keras_object(model))
    assert [type(a).__name__ for a in clone.layers] == [type(a).__name__ for a in model.layers]


def test_custom_classes_by_registry_custom_objects_or_scope():
    class Scaled(regularizers.Regularizer):
        def __init__(self, l2=0.1):
            self.l2 = l2

        def get_config(self):
            return {"l2": self.l2}

    config = saving.serialize_keras_object(Scaled(0.3))
    assert config["registered_name"] == "Scaled" and config["class_name"] == "Scaled"
    with pytest.raises(ValueError, match="could not locate class 'Scaled'"):
        saving.deserialize_keras_object(config)
    assert saving.deserialize_keras_object(config, custom_objects={"Scaled": Scaled}).l2 == 0.3
    with saving.custom_object_scope({"Scaled": Scaled}):
        assert saving.deserialize_keras_object(config).l2 == 0.3
    saving.register_keras_serializable(package="T", name="Sc")(Scaled)
    try:
        config = saving.serialize_keras_object(Scaled(0.4))
        assert config["registered_name"] == "T>Sc"
        assert saving.deserialize_keras_object(config).l2 == 0.4
    finally:
        del saving.get_custom_objects()["T>Sc"]


def test_deserialize_refuses_code_and_unknown_names():
    with pytest.raises(ValueError, match="lambda"):
        saving.deserialize_keras_object({"class_name": "__lambda__", "config": {"code": "x"}}, safe_mode=False)
    with pytest.raises(ValueError, match="lambda"):
        saving.serialize_keras_object(lambda x: x)
    with pytest.raises(ValueError, match="unknown function"):
        saving.deserialize_keras_object({"module": "builtins", "class_name": "function", "config": "nope"})
    with pytest.raises(ValueError, match="could not locate"):
        saving.deserialize_keras_object({"module": "keras.layers", "class_name": "Conv2D", "config": {}})
    with pytest.raises(TypeError, match="get_config"):
        saving.serialize_keras_object(object())
    with pytest.raises(ValueError, match="unexpected arguments"):
        saving.deserialize_keras_object({}, colour=1)


# ---- keras.regularizers.serialize / deserialize -------------------------------------------------------
def test_regularizers_serialize_and_deserialize_as_keras():
    keras = pytest.importorskip("keras")
    for ours, theirs in ((regularizers.L1L2(0.1, 0.2), keras.regularizers.L1L2(0.1, 0.2)),
                         (regularizers.L2(0.5), keras.regularizers.L2(0.5)), (None, None)):
        assert regularizers.serialize(ours) == keras.regularizers.serialize(theirs)
    for name in ("l2", "L2", "l1", "L1L2", "l1l2"):
        ours, theirs = regularizers.deserialize(name), keras.regularizers.deserialize(name)
        assert type(ours).__name__ == type(theirs).__name__
        assert ours.get_config() == pytest.approx(theirs.get_config())
    with pytest.raises(ValueError, match="l1_l2"):
        regularizers.deserialize("l1_l2")  # Keras refuses it too
    config = keras.regularizers.serialize(keras.regularizers.L1(0.3))
    assert regularizers.deserialize(config).get_config() == pytest.approx({"l1": 0.3})
    assert regularizers.L2.from_config({"l2": 0.7}).l2 == 0.7


def test_regularizers_refuse_a_penalty_the_fused_step_would_skip():
    class Custom(regularizers.Regularizer):
        def __call__(self, x):
            return 0.0

        def get_config(self):
            return {}

    with pytest.raises(ValueError, match="own penalty"):
        layers.Dense(2, kernel_regularizer=Custom())
    with pytest.raises(ValueError, match="own penalty"):
        regularizers.deserialize({"class_name": "Custom", "config": {}}, custom_objects={"Custom": Custom})
    with pytest.raises(ValueError, match="not a regularizer"):
        regularizers.deserialize({"class_name": "Dense", "config": {}})
