"""The TensorBoard callback, read back with TensorBoard's own event reader."""
import json

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlp_gpu import Dense, Input, Sequential
from mlp_gpu.callbacks.tensorboard import TensorBoard
from mlp_gpu.cli import main

from ..conftest import blobs


def read(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0, "images": 0})
    events.Reload()
    return events


def scalars(events, tag):
    return [(e.step, e.value) for e in events.Scalars(tag)]


def fit(tmp_path, epochs=3, **kwargs):
    x, y = blobs(n=200)
    model = Sequential([Input((8,)), Dense(6, "relu"), Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"], seed=0)
    history = model.fit(x, y, epochs=epochs, batch_size=32, validation_split=0.2, verbose=0, seed=0,
                        callbacks=[TensorBoard(tmp_path / "logs", **kwargs)])
    return model, history.history


def test_epoch_scalars_match_the_history_in_keras_layout(tmp_path):
    model, history = fit(tmp_path)
    train, val = read(tmp_path / "logs" / "train"), read(tmp_path / "logs" / "validation")
    for key in ("loss", "accuracy"):
        got = scalars(train, f"epoch_{key}")
        assert [s for s, _ in got] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in got], history[key], rtol=1e-6)
        np.testing.assert_allclose([v for _, v in scalars(val, f"epoch_{key}")], history["val_" + key], rtol=1e-6)
    assert [v for _, v in scalars(train, "epoch_learning_rate")] == pytest.approx([0.01] * 3)
    steps = [s for s, _ in scalars(val, "evaluation_loss_vs_iterations")]
    assert steps == [5, 10, 15]  # 160 training rows, batch 32: 5 optimizer steps per epoch
    assert not train.Tags()["histograms"]  # histogram_freq=0 writes none
    assert "batch_loss" not in train.Tags()["scalars"]  # update_freq="epoch" writes none


def test_histograms_images_and_the_model_graph(tmp_path):
    model, _ = fit(tmp_path, histogram_freq=2, write_images=True)
    train = read(tmp_path / "logs" / "train")
    tags = train.Tags()
    assert sorted(tags["histograms"]) == sorted(f"sequential/{layer}/{w}/histogram"
                                                for layer in ("dense", "dense_1") for w in ("kernel", "bias"))
    hist = train.Histograms("sequential/dense/kernel/histogram")
    assert [h.step for h in hist] == [0, 2]  # every histogram_freq epochs
    kernel = model.get_weights()[0]
    last = hist[-1].histogram_value
    assert last.num == kernel.size
    assert (last.min, last.max) == pytest.approx((kernel.min(), kernel.max()))
    assert "sequential/dense/kernel/image" in tags["images"]
    graph = json.loads(train.Tensors("keras")[0].tensor_proto.string_val[0])
    assert graph["class_name"] == "Sequential"
    assert [layer["class_name"] for layer in graph["config"]["layers"]] == ["InputLayer", "Dense", "Dense"]


def test_batch_logging_every_update_freq_steps(tmp_path):
    fit(tmp_path, epochs=2, update_freq=3, write_steps_per_second=True)
    train = read(tmp_path / "logs" / "train")
    assert [s for s, _ in scalars(train, "batch_loss")] == [3, 6, 9]  # 10 steps over two epochs
    assert all(v > 0 for _, v in scalars(train, "batch_steps_per_second"))
    assert all(v > 0 for _, v in scalars(train, "epoch_steps_per_second"))


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="update_freq"):
        TensorBoard(update_freq="sometimes")
    with pytest.raises(ValueError, match="update_freq"):
        TensorBoard(update_freq=0)
    with pytest.raises(ValueError, match="histogram_freq"):
        TensorBoard(histogram_freq=-1)
    with pytest.raises(ValueError, match="profile_batch"):
        TensorBoard(profile_batch=2)
    with pytest.raises(ValueError, match="embeddings_freq"):
        TensorBoard(embeddings_freq=1)


def test_cli_train_tensorboard(tiny_dataset, tmp_path):
    assert main(["train", "--data", str(tiny_dataset), "--backend", "numpy", "--epochs", "2", "--hidden", "16",
                 "--validation-size", "40", "--verbose", "0", "--output", str(tmp_path / "m.h5"),
                 "--tensorboard", str(tmp_path / "tb")]) == 0
    assert [s for s, _ in scalars(read(tmp_path / "tb" / "validation"), "epoch_accuracy")] == [0, 1]


def test_histograms_cover_every_weight_of_every_layer(tmp_path):
    from mlp_gpu import BatchNormalization, Dropout

    x, y = blobs(n=100)
    model = Sequential([Input((8,)), Dense(6, "relu"), BatchNormalization(), Dropout(0.2), Dense(3, "softmax")],
                       backend="numpy")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    model.fit(x, y, epochs=1, verbose=0, seed=0, callbacks=[TensorBoard(tmp_path / "logs", histogram_freq=1)])
    tags = read(tmp_path / "logs" / "train").Tags()["histograms"]
    expected = [f"sequential/batch_normalization/{w}/histogram" for w in ("gamma", "beta", "moving_mean",
                                                                          "moving_variance")]
    assert set(expected) <= set(tags) and len(tags) == 8
