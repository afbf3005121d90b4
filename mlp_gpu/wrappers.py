"""scikit-learn estimators around mlp_gpu models, with the names and arguments of Keras 3's own
(``keras.wrappers.SKLearnClassifier``, ``SKLearnRegressor``)::

    def build(X, y, hidden=32):
        model = Sequential([Input((X.shape[1],)), Dense(hidden, "relu"), Dense(y.shape[1], "softmax")])
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        return model

    clf = SKLearnClassifier(build, model_kwargs={"hidden": 64}, fit_kwargs={"epochs": 20, "verbose": 0})
    GridSearchCV(clf, {"model_kwargs": [{"hidden": 16}, {"hidden": 64}]}).fit(X, y)

As in Keras, the classifier one-hot encodes y before it reaches the build function and ``model.fit``
(so the model ends in ``Dense(n_classes, "softmax")`` with categorical cross-entropy), and ``predict``
returns the class of the largest output. Beyond Keras: ``predict_proba`` (the outputs, rows summing to
one); for two classes ``decision_function`` gives one score per row as scikit-learn expects; a fitted
estimator pickles (the model travels as the bytes of an mlp_gpu model file).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.multiclass import type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - the sklearn extra is part of dev
    raise ImportError("mlp_gpu.wrappers needs scikit-learn >= 1.6: pip install 'mlp_gpu[sklearn]'") from exc

from . import losses
from .models.saving import load_model
from .models.sequential import Sequential


def _clone(model):
    """A fresh, compiled copy of a compiled model (new weights), as keras.models.clone_model gives."""
    copy = Sequential.from_config(model.get_config(), backend=model._backend_request)
    optimizer = type(model.optimizer).from_config(model.optimizer.get_config())
    copy.compile(loss=losses.get(model.loss.name), optimizer=optimizer, metrics=model.metrics)
    return copy


class SKLBase(BaseEstimator):
    """Shared by the classifier and the regressor; see the module docstring.

    Args:
        model: a compiled ``Sequential`` (copied with fresh weights before each fit unless
            ``warm_start``) or a callable ``model(X=X, y=y, **model_kwargs)`` returning one, compiled.
        warm_start: reuse the fitted model and its weights on the next ``fit``.
        model_kwargs: keyword arguments for ``model`` when it is a callable.
        fit_kwargs: keyword arguments for ``model.fit``; those given to ``fit`` take precedence.
    """

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None):
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags

    def _get_model(self, X, y):
        if self.warm_start and hasattr(self, "model_"):
            return self.model_
        if isinstance(self.model, Sequential):
            if self.model.loss is None:
                raise RuntimeError("model: the given model must be compiled, with a loss and an optimizer")
            return _clone(self.model)
        if not callable(self.model):
            raise TypeError(f"model: expected a compiled Sequential or a callable returning one, "
                            f"got {type(self.model).__name__}")
        model = self.model(X=X, y=y, **(self.model_kwargs or {}))
        if not isinstance(model, Sequential) or model.loss is None:
            raise RuntimeError("model: the build function must return a compiled mlp_gpu Sequential, "
                               f"got {type(model).__name__}")
        return model

    def fit(self, X, y, **kwargs):
        """Build (or reuse) the model and train it; keyword arguments go to ``model.fit``."""
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=self._numeric_y, y_numeric=self._numeric_y)
        y = self._process_target(y, reset=True)
        model = self._get_model(X, y)
        self.history_ = model.fit(X, y, **{**(self.fit_kwargs or {}), **kwargs}).history
        self.model_ = model
        return self

    def _outputs(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self.model_.predict(X, verbose=0)

    def __getstate__(self):
        """Pickle the fitted model as the bytes of an mlp_gpu model file."""
        state = dict(self.__dict__)
        if "model_" in state:
            with tempfile.TemporaryDirectory() as folder:
                state["model_"].save(Path(folder) / "model.h5")
                state["model_"] = (Path(folder) / "model.h5").read_bytes()
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), bytes):
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / "model.h5").write_bytes(state["model_"])
                state["model_"] = load_model(Path(folder) / "model.h5")
        self.__dict__.update(state)


class SKLearnClassifier(ClassifierMixin, SKLBase):
    """scikit-learn classifier around an mlp_gpu model; attributes ``model_``, ``history_``, ``classes_``."""

    _numeric_y = False

    def _process_target(self, y, reset=False):
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Only binary and multiclass target types are supported. Target type: {kind}")
        if reset:
            self.classes_ = np.unique(y)
            if len(self.classes_) == 1:
                raise ValueError("Classifier can't train when only one class is present.")
        return np.eye(len(self.classes_), dtype=np.float32)[np.searchsorted(self.classes_, y)]

    def predict_proba(self, X):
        """Class probabilities (the model's outputs, normalized), columns in the order of ``classes_``."""
        out = self._outputs(X).astype(np.float64)
        return out / out.sum(axis=1, keepdims=True)

    def decision_function(self, X):
        """The model's outputs, as Keras' wrapper gives them; for two classes, as scikit-learn expects,
        one score per row, positive for ``classes_[1]`` (the difference of the two outputs)."""
        out = self._outputs(X)
        return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out

    def predict(self, X):
        scores = self._outputs(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class SKLearnRegressor(RegressorMixin, SKLBase):
    """scikit-learn regressor around an mlp_gpu model; 1-D targets reach the model as one column."""

    _numeric_y = True

    def _process_target(self, y, reset=False):
        y = np.asarray(y, np.float32)
        if reset:
            self.target_ndim_ = y.ndim
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def predict(self, X):
        out = self._outputs(X).astype(np.float64)  # scikit-learn expects float64 predictions
        return out[:, 0] if self.target_ndim_ == 1 and out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        tags.target_tags.multi_output = True  # y of shape (n, k) trains a model with k outputs
        return tags
