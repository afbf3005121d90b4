"""pickle.dumps(model) / copy.deepcopy(model), as Keras 3 pickles models: the copy predicts the same numbers
and trains on from the same state; scikit-learn's searches over a model instance run in worker processes."""
import copy
import pickle

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Model, Sequential, optimizers
from mlp_gpu.layers import BatchNormalization, Concatenate

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 5)).astype(np.float32)
Y = (np.arange(40) % 3).astype(np.int64)


def _sequential():
    model = Sequential([Input((5,)), Dense(8, "relu"), BatchNormalization(), Dense(3, "softmax")], backend="numpy")
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  seed=0)
    return model


def _graph():
    a, b = Input((3,), name="a"), Input((2,), name="b")
    out = Dense(3, "softmax")(Concatenate()([Dense(4, "relu")(a), b]))
    model = Model([a, b], out, backend="numpy")
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy", seed=0)
    return model


def _same_weights(m1, m2):
    return all(np.array_equal(a, b) for a, b in zip(m1.get_weights(), m2.get_weights()))


@pytest.mark.parametrize("copier", [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy])
def test_a_fitted_sequential_copies_and_trains_on_alike(copier):
    model = _sequential()
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    twin = copier(model)
    assert type(twin) is Sequential and twin is not model and twin.layers[0] is not model.layers[0]
    np.testing.assert_array_equal(twin.predict(X), model.predict(X))
    assert twin.optimizer.iterations == model.optimizer.iterations == 10
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0, seed=5)
    twin.fit(X, Y, epochs=1, batch_size=8, verbose=0, seed=5)  # Adam's moments travelled with it
    assert _same_weights(model, twin)


def test_a_fitted_graph_model_pickles():
    model = _graph()
    xs = [X[:, :3], X[:, 3:]]
    model.fit(xs, Y, epochs=2, verbose=0)
    twin = pickle.loads(pickle.dumps(model))
    assert type(twin) is Model and twin.input_names == model.input_names
    np.testing.assert_array_equal(twin.predict(xs), model.predict(xs))


def test_a_chain_model_stays_a_model():
    inputs = Input((5,))
    model = Model(inputs, Dense(3, "softmax")(Dense(4, "relu")(inputs)), backend="numpy")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    model.fit(X, Y, verbose=0)
    twin = pickle.loads(pickle.dumps(model))
    assert type(twin) is Model
    np.testing.assert_array_equal(twin.predict(X), model.predict(X))


def test_unbuilt_and_uncompiled_models_pickle():
    unbuilt = Sequential([Dense(4, "relu"), Dense(3, "softmax")], backend="numpy")
    unbuilt.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    twin = pickle.loads(pickle.dumps(unbuilt))
    assert not twin.built and type(twin.optimizer).__name__ == "SGD" and twin.loss.name == unbuilt.loss.name
    twin.fit(X, Y, verbose=0)
    plain = Sequential([Input((5,)), Dense(3)], backend="numpy")
    plain.build()
    copy_ = pickle.loads(pickle.dumps(plain))
    assert not copy_.compiled
    np.testing.assert_array_equal(copy_.predict(X), plain.predict(X))


def test_frozen_flags_and_compile_snapshot_travel():
    model = _sequential()
    model.layers[0].trainable = False
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    twin = pickle.loads(pickle.dumps(model))
    assert twin.layers[0].trainable is False
    before = twin.layers[0].get_weights()
    twin.fit(X, Y, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, twin.layers[0].get_weights()))


def test_a_subclassed_model_is_refused_clearly():
    class Net(Model):
        def __init__(self):
            super().__init__(backend="numpy")
            self.out = Dense(3)

        def call(self, inputs):
            return self.out(inputs)
    net = Net()
    net.build((None, 5))
    with pytest.raises(pickle.PicklingError, match="subclassed model"):
        pickle.dumps(net)


def test_grid_search_with_two_jobs_over_a_model_instance():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV  # an optional dependency, as is the wrapper's

    from mlp_gpu.wrappers import SKLearnClassifier
    template = Sequential([Input((5,)), Dense(8, "relu"), Dense(3, "softmax")], backend="numpy")
    template.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"], seed=0)
    est = SKLearnClassifier(template, fit_kwargs={"epochs": 3, "verbose": 0, "seed": 0})
    grid = GridSearchCV(est, {"fit_kwargs": [{"epochs": 1, "verbose": 0, "seed": 0},
                                            {"epochs": 3, "verbose": 0, "seed": 0}]}, cv=2, n_jobs=2)
    grid.fit(X, Y)
    assert len(grid.cv_results_["mean_test_score"]) == 2
    assert grid.best_estimator_.predict(X).shape == (40,)


def test_a_float64_model_is_refused_clearly():
    model = Sequential([Input((5,)), Dense(3)], backend="numpy", dtype="float64")
    model.build()
    with pytest.raises(pickle.PicklingError, match="float64"):
        pickle.dumps(model)
