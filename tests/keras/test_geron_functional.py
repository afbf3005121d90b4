"""Géron's chapter-10 functional and subclassing cells (Wide & Deep on California-housing-like data),
as in the book with ``tf.keras`` replaced by ``mlp_gpu``. The two-output cells list one metric per
output: Keras 3 refuses a single metric for two outputs, and so do we (at compile)."""
import numpy as np
import pytest

import mlp_gpu as keras_like  # the cells below read as Géron wrote them, with tf.keras -> mlp_gpu


class tf:  # noqa: N801 -- Géron's cells say tf.keras
    keras = keras_like


def housing(rows=600, seed=42):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=[3.8, 28, 5.4, 1.1, 1400, 3, 35.6, -119.5], scale=[1.9, 12, 2.5, 0.5, 1100, 10, 2.1, 2.0],
                   size=(rows, 8))
    y = (0.4 * x[:, 0] + 0.01 * x[:, 1] - 0.3 * (x[:, 6] - 35.6) + rng.normal(scale=0.3, size=rows)).reshape(-1, 1)
    return x[:400], y[:400], x[400:500], y[400:500], x[500:], y[500:]


def test_wide_and_deep_single_input():
    X_train, y_train, X_valid, y_valid, X_test, y_test = housing()
    X_new = X_test[:3]
    normalization_layer = tf.keras.layers.Normalization()
    hidden_layer1 = tf.keras.layers.Dense(30, activation="relu")
    hidden_layer2 = tf.keras.layers.Dense(30, activation="relu")
    concat_layer = tf.keras.layers.Concatenate()
    output_layer = tf.keras.layers.Dense(1)

    input_ = tf.keras.layers.Input(shape=X_train.shape[1:])
    normalized = normalization_layer(input_)
    hidden1 = hidden_layer1(normalized)
    hidden2 = hidden_layer2(hidden1)
    concat = concat_layer([normalized, hidden2])
    output = output_layer(concat)

    model = tf.keras.Model(inputs=[input_], outputs=[output])
    optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)
    model.compile(loss="mse", optimizer=optimizer, metrics=["RootMeanSquaredError"])
    normalization_layer.adapt(X_train)
    history = model.fit(X_train, y_train, epochs=20, validation_data=(X_valid, y_valid), verbose=0)
    mse_test, rmse_test = model.evaluate(X_test, y_test)
    y_pred = model.predict(X_new)
    assert y_pred.shape == (3, 1)
    assert history.history["val_loss"][-1] < 0.5 * history.history["val_loss"][0]
    assert np.isclose(rmse_test, np.sqrt(mse_test), rtol=1e-5)


def test_wide_and_deep_two_inputs_and_an_auxiliary_output():
    X_train, y_train, X_valid, y_valid, X_test, y_test = housing()
    input_wide = tf.keras.layers.Input(shape=[5])  # features 0 to 4
    input_deep = tf.keras.layers.Input(shape=[6])  # features 2 to 7
    norm_layer_wide = tf.keras.layers.Normalization()
    norm_layer_deep = tf.keras.layers.Normalization()
    norm_wide = norm_layer_wide(input_wide)
    norm_deep = norm_layer_deep(input_deep)
    hidden1 = tf.keras.layers.Dense(30, activation="relu")(norm_deep)
    hidden2 = tf.keras.layers.Dense(30, activation="relu")(hidden1)
    concat = tf.keras.layers.concatenate([norm_wide, hidden2])
    output = tf.keras.layers.Dense(1)(concat)
    aux_output = tf.keras.layers.Dense(1)(hidden2)
    model = tf.keras.Model(inputs=[input_wide, input_deep], outputs=[output, aux_output])

    optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)
    with pytest.raises(ValueError, match="metrics: a model with 2 outputs"):
        model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer=optimizer,
                      metrics=["RootMeanSquaredError"])
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer=optimizer,
                  metrics=["RootMeanSquaredError", "RootMeanSquaredError"])

    X_train_wide, X_train_deep = X_train[:, :5], X_train[:, 2:]
    X_valid_wide, X_valid_deep = X_valid[:, :5], X_valid[:, 2:]
    X_test_wide, X_test_deep = X_test[:, :5], X_test[:, 2:]
    X_new_wide, X_new_deep = X_test_wide[:3], X_test_deep[:3]

    norm_layer_wide.adapt(X_train_wide)
    norm_layer_deep.adapt(X_train_deep)
    history = model.fit((X_train_wide, X_train_deep), (y_train, y_train), epochs=20,
                        validation_data=((X_valid_wide, X_valid_deep), (y_valid, y_valid)), verbose=0)
    eval_results = model.evaluate((X_test_wide, X_test_deep), (y_test, y_test))
    weighted_sum_of_losses, main_loss, aux_loss, main_rmse, aux_rmse = eval_results
    assert np.isclose(weighted_sum_of_losses, 0.9 * main_loss + 0.1 * aux_loss, rtol=1e-5)
    y_pred_main, y_pred_aux = model.predict((X_new_wide, X_new_deep))
    y_pred_tuple = model.predict((X_new_wide, X_new_deep))
    y_pred = dict(zip(model.output_names, y_pred_tuple))
    assert sorted(y_pred) == ["dense_2", "dense_3"] and y_pred_main.shape == y_pred_aux.shape == (3, 1)
    assert sorted(history.history) == sorted(
        ["loss", "dense_2_loss", "dense_3_loss", "dense_2_RootMeanSquaredError", "dense_3_RootMeanSquaredError"]
        + ["val_loss", "val_dense_2_loss", "val_dense_3_loss", "val_dense_2_RootMeanSquaredError",
           "val_dense_3_RootMeanSquaredError"])
    assert history.history["val_dense_2_loss"][-1] < 0.5 * history.history["val_dense_2_loss"][0]


class WideAndDeepModel(tf.keras.Model):
    def __init__(self, units=30, activation="relu", **kwargs):
        super().__init__(**kwargs)  # needed to support naming the model
        self.norm_layer_wide = tf.keras.layers.Normalization()
        self.norm_layer_deep = tf.keras.layers.Normalization()
        self.hidden1 = tf.keras.layers.Dense(units, activation=activation)
        self.hidden2 = tf.keras.layers.Dense(units, activation=activation)
        self.main_output = tf.keras.layers.Dense(1)
        self.aux_output = tf.keras.layers.Dense(1)

    def call(self, inputs):
        input_wide, input_deep = inputs
        norm_wide = self.norm_layer_wide(input_wide)
        norm_deep = self.norm_layer_deep(input_deep)
        hidden1 = self.hidden1(norm_deep)
        hidden2 = self.hidden2(hidden1)
        concat = tf.keras.layers.concatenate([norm_wide, hidden2])
        output = self.main_output(concat)
        aux_output = self.aux_output(hidden2)
        return output, aux_output


def test_subclassing_api():
    X_train, y_train, X_valid, y_valid, X_test, y_test = housing()
    X_train_wide, X_train_deep = X_train[:, :5], X_train[:, 2:]
    X_valid_wide, X_valid_deep = X_valid[:, :5], X_valid[:, 2:]
    X_test_wide, X_test_deep = X_test[:, :5], X_test[:, 2:]
    X_new_wide, X_new_deep = X_test_wide[:3], X_test_deep[:3]

    model = WideAndDeepModel(30, activation="relu", name="my_cool_model")
    optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)
    model.compile(loss="mse", loss_weights=[0.9, 0.1], optimizer=optimizer,
                  metrics=["RootMeanSquaredError", "RootMeanSquaredError"])
    model.norm_layer_wide.adapt(X_train_wide)
    model.norm_layer_deep.adapt(X_train_deep)
    history = model.fit((X_train_wide, X_train_deep), (y_train, y_train), epochs=10,
                        validation_data=((X_valid_wide, X_valid_deep), (y_valid, y_valid)), verbose=0)
    eval_results = model.evaluate((X_test_wide, X_test_deep), (y_test, y_test))
    weighted_sum_of_losses, main_loss, aux_loss, main_rmse, aux_rmse = eval_results
    y_pred_main, y_pred_aux = model.predict((X_new_wide, X_new_deep))
    assert model.name == "my_cool_model" and y_pred_main.shape == (3, 1)
    assert history.history["val_loss"][-1] < history.history["val_loss"][0]
    assert np.isclose(weighted_sum_of_losses, 0.9 * main_loss + 0.1 * aux_loss, rtol=1e-5)
