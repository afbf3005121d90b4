"""scikit-learn wrappers: Keras 3's names, usable in Pipeline and the searches, and scikit-learn's own checks."""
import pickle

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from mlp_gpu import Dense, Input, Sequential
from mlp_gpu.wrappers import SKLearnClassifier, SKLearnRegressor

FIT = {"epochs": 20, "batch_size": 16, "verbose": 0, "seed": 0}


def classifier_model(X, y, hidden=16, learning_rate=0.01):
    from mlp_gpu import Adam

    model = Sequential([Input((X.shape[1],)), Dense(hidden, "relu"), Dense(y.shape[1], "softmax")], backend="numpy")
    model.compile(loss="categorical_crossentropy", optimizer=Adam(learning_rate), metrics=["accuracy"], seed=0)
    return model


def regressor_model(X, y, hidden=16):
    model = Sequential([Input((X.shape[1],)), Dense(hidden, "tanh"), Dense(y.shape[1])], backend="numpy")
    model.compile(loss="mse", optimizer="adam", seed=0)
    return model


def clf(**kwargs):
    return SKLearnClassifier(classifier_model, fit_kwargs=FIT, **kwargs)


@pytest.fixture(scope="module")
def blobs3():
    X, y = make_classification(n_samples=240, n_features=6, n_informative=4, n_classes=3, random_state=0)
    return X, np.array(["cat", "dog", "emu"])[y]


def test_fit_predict_proba_score_and_classes(blobs3):
    X, y = blobs3
    est = clf(model_kwargs={"hidden": 24, "learning_rate": 0.02}).fit(X, y)
    assert list(est.classes_) == ["cat", "dog", "emu"]
    proba = est.predict_proba(X)
    assert proba.shape == (240, 3) and np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(est.predict(X), est.classes_[proba.argmax(axis=1)])
    assert est.score(X, y) > 0.8  # ClassifierMixin.score: accuracy
    assert len(est.history_["loss"]) == 20 and est.history_["loss"][-1] < est.history_["loss"][0]
    assert est.get_params()["model_kwargs"] == {"hidden": 24, "learning_rate": 0.02}
    est.set_params(model_kwargs={"hidden": 4})
    assert est.fit(X, y).model_.dense_layers[0].units == 4


def test_regressor_and_a_compiled_model_instance():
    X, y = make_regression(n_samples=200, n_features=5, noise=0.1, random_state=0)
    y = y / y.std()
    template = regressor_model(X, y.reshape(-1, 1), hidden=12)
    est = SKLearnRegressor(template, fit_kwargs={**FIT, "epochs": 40}).fit(X, y)
    assert est.model_ is not template  # a fresh copy, as Keras clones the model
    assert est.predict(X).shape == (200,)
    assert est.score(X, y) > 0.8  # RegressorMixin.score: R²


def test_warm_start_continues_the_same_model(blobs3):
    X, y = blobs3
    est = clf(warm_start=True).fit(X, y)
    first, weights = est.model_, est.model_.get_weights()
    est.fit(X, y)
    assert est.model_ is first and not np.array_equal(weights[0], est.model_.get_weights()[0])


def test_pipeline_grid_random_search_and_cross_val_score(blobs3):
    X, y = blobs3
    pipe = make_pipeline(StandardScaler(), clf())
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.7
    grid = GridSearchCV(pipe, {"sklearnclassifier__model_kwargs": [{"hidden": 2}, {"hidden": 32}]}, cv=2).fit(X, y)
    assert grid.best_params_["sklearnclassifier__model_kwargs"] == {"hidden": 32}
    search = RandomizedSearchCV(clf(), {"model_kwargs": [{"learning_rate": r} for r in (0.003, 0.01, 0.03)]},
                                n_iter=2, cv=2, random_state=0).fit(X, y)
    assert search.best_estimator_.predict(X).shape == (240,)


def test_pickle_keeps_the_fitted_model(blobs3):
    X, y = blobs3
    est = clf().fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))


def test_bad_models_are_clear_errors(blobs3):
    X, y = blobs3
    with pytest.raises(TypeError, match="model: expected a compiled Sequential or a callable"):
        SKLearnClassifier("mlp").fit(X, y)
    uncompiled = Sequential([Input((6,)), Dense(3, "softmax")], backend="numpy")
    with pytest.raises(RuntimeError, match="must be compiled"):
        SKLearnClassifier(uncompiled).fit(X, y)
    with pytest.raises(ValueError, match="only one class"):
        clf().fit(X, np.zeros(len(X)))


# scikit-learn's own estimator checks: all pass. scikit-learn itself skips check_fit_idempotent
# (the non_deterministic tag, as Keras' wrappers set: without a fixed seed each fit draws new weights)
# and its array-API checks (only with SCIPY_ARRAY_API=1 and array-api-strict).
@parametrize_with_checks([SKLearnClassifier(classifier_model, fit_kwargs={**FIT, "epochs": 5}),
                          SKLearnRegressor(regressor_model, fit_kwargs={**FIT, "epochs": 5})])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
