"""Metrics over confusion counts or column sums: AUC, Precision, Recall, F1Score, R2Score.

Keras' formulas (keras/src/metrics/confusion_metrics.py, f_score_metrics.py, regression_metrics.py,
metrics_utils.py). Their state is a few arrays of counts or sums (``_keys``, each ``_width()`` long),
not one sum of per-row values: compile gives such a metric ``size`` consecutive slots of the running
sums, ``device_sum`` adds a batch's counts there on the device (array expressions against the
backend's ``xp``, so a CUDA fit with one runs plain steps, not captured graphs: training/steps.py),
and ``result(total)`` unpacks them into the same state ``update_state`` keeps standalone: one
formula for both, in ``_sums`` and ``_result``.
"""
from __future__ import annotations

import numpy as np

from ..activations import stable_sigmoid
from .base import Metric

EPSILON = 1e-7  # Keras' backend.epsilon()


def _divide_no_nan(a, b):
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    out = np.zeros(a.shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


def _activate(xp, z, activation):
    """The outputs from the last layer's buffer (its pre-activation when the loss fused the activation)."""
    if activation == "sigmoid":
        return stable_sigmoid(z, xp.empty_like(z), xp)
    if activation == "softmax":
        e = xp.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if activation == "linear":
        return z
    raise ValueError(f"activation: expected 'linear', 'sigmoid' or 'softmax', got {activation!r}")


class _Host(Metric, kind="device", targets="dense"):
    _keys: tuple = ()

    def __init__(self, dtype=None, name=None):
        super().__init__(dtype=dtype, name=name)
        self.size = 1
        self.reset_state()

    # ---- compile: slots, the device's per-batch sums, the result from the host copy of the sums ----------
    def check(self, loss, units):
        super().check(loss, units)
        self._units = int(units)
        self.size = len(self._keys) * self._width()

    def _width(self) -> int:
        raise NotImplementedError

    def _thresholds_on(self, xp):
        """The thresholds as a float32 array of ``xp``, made once per array module (no per-step upload)."""
        cache = self.__dict__.setdefault("_device_thresholds", {})
        if xp.__name__ not in cache:
            cache[xp.__name__] = xp.asarray(np.asarray(self.thresholds, np.float32))
        return cache[xp.__name__]

    def device_sum(self, xp, z, target, acc, slot: int, activation: str = "linear") -> None:
        """acc[slot:slot + size] += this batch's state arrays (``_keys`` in order), on the device."""
        counts = self._sums(xp, target.reshape(z.shape), _activate(xp, z, activation))
        width = self._width()
        for i, key in enumerate(self._keys):
            view = acc[slot + i * width:slot + (i + 1) * width]
            view += counts[key]

    def result(self, total=None, rows=None):
        """Keras' result() of the state update_state kept, or of the device sums ``total`` (``size`` slots)."""
        if total is None:
            return self._result(self._state)
        total, width = np.asarray(total, np.float64).reshape(-1), self._width()
        return self._result({key: total[i * width:(i + 1) * width] for i, key in enumerate(self._keys)})

    # ---- standalone ------------------------------------------------------------------------------
    def reset_state(self):
        self._state = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported; mlp_gpu weighs every sample alike")
        got = {key: np.asarray(value, np.float64) for key, value in
               self._sums(np, np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)).items()}
        self._state = got if self._state is None else {k: self._state[k] + got[k] for k in got}

    def get_config(self):
        return {"class_name": type(self).__name__, "config": {"name": self.name, **self._config()}}


MAX_THRESHOLDS = 1_000_000  # a config (maybe a stranger's file) names the count: Keras' default is 200


def _thresholds(thresholds, default, owner):
    if thresholds is None:
        return [default]
    values = [thresholds] if np.isscalar(thresholds) else list(thresholds)
    if len(values) > MAX_THRESHOLDS:
        raise ValueError(f"{owner}(thresholds): expected at most {MAX_THRESHOLDS} thresholds, got {len(values)}")
    for t in values:
        if isinstance(t, bool) or not isinstance(t, (int, float, np.floating, np.integer)) or not 0 <= t <= 1:
            raise ValueError(f"{owner}(thresholds): expected numbers in [0, 1], got {thresholds!r}")
    return [float(t) for t in values]


def _counts(xp, y_true, y_pred, thresholds):
    """Keras' update_confusion_matrix_variables without weights: tp, fp, fn, tn per threshold of
    pred > threshold (``thresholds`` a float32 array of xp), all entries flattened."""
    t = y_true.reshape(-1)
    truth = (t if t.dtype == bool else t > 0.5).astype(xp.float32)
    # compared in float32, as Keras' metrics are: 0.2 in float64 lies below 0.2 in float32
    positive = (y_pred.astype(xp.float32).reshape(1, -1) > thresholds.reshape(-1, 1)).astype(xp.float32)
    tp = positive @ truth  # float32 counts are exact up to 2**24 entries a batch
    fp = positive.sum(axis=1) - tp
    trues = truth.sum()
    fn = trues - tp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": (truth.size - trues) - fp}


class _PrecisionRecall(_Host):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        owner = type(self).__name__
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"{owner}(top_k): expected None or a positive int, got {top_k!r}")
        if class_id is not None and (isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer))):
            raise ValueError(f"{owner}(class_id): expected None or an int, got {class_id!r}")
        self.init_thresholds, self.top_k, self.class_id = thresholds, top_k, class_id
        self.thresholds = _thresholds(thresholds, 0.5 if top_k is None else -np.inf, owner)
        super().__init__(dtype=dtype, name=name if name is not None else self.name)

    _keys = ("tp", "fp", "fn")

    def _width(self):
        return len(self.thresholds)

    def reset_state(self):
        self._state = {key: np.zeros(len(self.thresholds)) for key in self._keys}

    def _sums(self, xp, y_true, y_pred):
        y_true = y_true.reshape(y_pred.shape) if y_true.size == y_pred.size else y_true
        if self.top_k is not None:  # Keras' _filter_top_k: all but each row's k largest become -inf
            rank = xp.argsort(xp.argsort(-y_pred, axis=-1, kind="stable"), axis=-1, kind="stable")  # ties: the first
            y_pred = xp.where(rank < self.top_k, y_pred, -xp.inf)
        if self.class_id is not None:
            y_true, y_pred = y_true[..., self.class_id], y_pred[..., self.class_id]
        counts = _counts(xp, y_true, y_pred, self._thresholds_on(xp))
        return {key: counts[key] for key in self._keys}

    def _config(self):
        return {"thresholds": self.init_thresholds, "top_k": self.top_k, "class_id": self.class_id}

    def _result(self, s):
        value = _divide_no_nan(s["tp"], s["tp"] + s[self._other])
        return float(value[0]) if len(self.thresholds) == 1 else value


class Precision(_PrecisionRecall):
    """tp / (tp + fp) at each threshold (one number for one threshold)."""

    name, _other = "precision", "fp"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)


class Recall(_PrecisionRecall):
    """tp / (tp + fn) at each threshold (one number for one threshold)."""

    name, _other = "recall", "fn"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)


class AUC(_Host):
    """Keras' AUC: confusion counts at num_thresholds thresholds, the curve's area by a Riemann sum
    (``interpolation``: trapezoids; PR with interpolation: Davis & Goadrich's, as Keras)."""

    name = "auc"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        if str(curve).upper() not in ("ROC", "PR"):
            raise ValueError(f"AUC(curve): expected 'ROC' or 'PR', got {curve!r}")
        if str(summation_method).lower() not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC(summation_method): expected 'interpolation', 'minoring' or 'majoring', "
                             f"got {summation_method!r}")
        if multi_label or num_labels is not None or label_weights is not None:
            raise ValueError("AUC(multi_label, num_labels, label_weights): one curve over all labels is supported "
                             "(multi_label=False)")
        if thresholds is not None:
            inner = sorted(_thresholds(thresholds, None, "AUC"))
            self.num_thresholds = len(inner) + 2
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer)) \
                    or not 1 < num_thresholds <= MAX_THRESHOLDS:
                raise ValueError(f"AUC(num_thresholds): expected an integer in (1, {MAX_THRESHOLDS}], "
                                 f"got {num_thresholds!r}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self._init_thresholds = thresholds
        self._thresholds = np.array([0.0 - EPSILON] + inner + [1.0 + EPSILON])
        self.curve, self.summation_method = str(curve).upper(), str(summation_method).lower()
        self.from_logits = bool(from_logits)
        super().__init__(dtype=dtype, name=name if name is not None else "auc")

    @property
    def thresholds(self):
        return list(self._thresholds)

    _keys = ("tp", "fp", "fn", "tn")

    def _width(self):
        return self.num_thresholds

    def reset_state(self):
        self._state = {key: np.zeros(self.num_thresholds) for key in self._keys}

    def _sums(self, xp, y_true, y_pred):
        if self.from_logits:
            y_pred = 0.5 * xp.tanh(0.5 * y_pred) + 0.5
        return _counts(xp, y_true, y_pred, self._thresholds_on(xp))

    def _config(self):
        return {"num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "thresholds": self._init_thresholds,
                "from_logits": self.from_logits}

    def _interpolate_pr_auc(self, s):
        tp, fp, fn, n = s["tp"], s["fp"], s["fn"], self.num_thresholds
        dtp = tp[:n - 1] - tp[1:]
        p = tp + fp
        dp = p[:n - 1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:n - 1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:n - 1], np.maximum(p[1:], 0)), 1.0)
        return float(np.sum(_divide_no_nan(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))))

    def _result(self, s):
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc(s)
        n = self.num_thresholds
        recall = _divide_no_nan(s["tp"], s["tp"] + s["fn"])
        if self.curve == "ROC":
            x, y = _divide_no_nan(s["fp"], s["fp"] + s["tn"]), recall
        else:
            x, y = recall, _divide_no_nan(s["tp"], s["tp"] + s["fp"])
        if self.summation_method == "interpolation":
            heights = (y[:n - 1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:n - 1], y[1:])
        else:
            heights = np.maximum(y[:n - 1], y[1:])
        return float(np.sum((x[:n - 1] - x[1:]) * heights))


class F1Score(_Host):
    """Keras' F1Score (FBetaScore with beta=1): per-class counts, averaged by ``average``."""

    name = "f1_score"
    _keys = ("tp", "fp", "fn", "w")  # per class; "micro" adds them up in _result

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(f"F1Score(average): expected None, 'micro', 'macro' or 'weighted', got {average!r}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0 < threshold <= 1):
            raise ValueError(f"F1Score(threshold): expected None or a number in (0, 1], got {threshold!r}")
        self.average, self.threshold, self.beta = average, threshold, 1.0
        super().__init__(dtype=dtype, name=name)

    def _width(self):
        return self._units

    def _sums(self, xp, y_true, y_pred):
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ValueError(f"F1Score expects 2D inputs of one shape (batch_size, output_dim), got y_true "
                             f"{y_true.shape} and y_pred {y_pred.shape}")
        if self.threshold is None:
            pred = (y_pred >= y_pred.max(axis=-1, keepdims=True)) & (xp.abs(y_pred) > 1e-9)
        else:
            pred = y_pred > self.threshold
        pred = pred.astype(y_pred.dtype)
        return {"tp": (pred * y_true).sum(axis=0), "fp": (pred * (1 - y_true)).sum(axis=0),
                "fn": ((1 - pred) * y_true).sum(axis=0), "w": y_true.sum(axis=0)}

    def _config(self):
        return {"average": self.average, "threshold": self.threshold}

    def _result(self, s):
        if s is None:
            return 0.0
        if self.average == "micro":
            s = {key: np.sum(value) for key, value in s.items()}
        b2 = self.beta ** 2
        precision = s["tp"] / (s["tp"] + s["fp"] + EPSILON)
        recall = s["tp"] / (s["tp"] + s["fn"] + EPSILON)
        f1 = precision * recall / (b2 * precision + recall + EPSILON) * (1 + b2)
        if self.average == "weighted":
            return float(np.sum(f1 * s["w"] / (np.sum(s["w"]) + EPSILON)))
        if self.average is not None:
            return float(np.mean(f1))
        return f1


class R2Score(_Host):
    """Keras' R2Score: 1 - residual / total sum of squares per output, aggregated by ``class_aggregation``."""

    name = "r2_score"
    _keys = ("sum", "squared", "residual", "count")  # per output

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        if class_aggregation not in (None, "uniform_average", "variance_weighted_average"):
            raise ValueError(f"R2Score(class_aggregation): expected None, 'uniform_average' or "
                             f"'variance_weighted_average', got {class_aggregation!r}")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, (int, np.integer)) or num_regressors < 0:
            raise ValueError(f"R2Score(num_regressors): expected an int >= 0, got {num_regressors!r}")
        self.class_aggregation, self.num_regressors = class_aggregation, int(num_regressors)
        super().__init__(dtype=dtype, name=name)

    def _width(self):
        return self._units

    def _sums(self, xp, y_true, y_pred):
        if y_true.ndim == 1:
            y_true = y_true[:, None]
        if y_pred.ndim == 1:
            y_pred = y_pred[:, None]
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ValueError(f"R2Score expects 2D inputs of one shape (batch_size, output_dim), got y_true "
                             f"{y_true.shape} and y_pred {y_pred.shape}")
        return {"sum": y_true.sum(axis=0), "squared": (y_true * y_true).sum(axis=0),
                "residual": ((y_true - y_pred) ** 2).sum(axis=0),
                "count": xp.full(y_true.shape[1], len(y_true), y_true.dtype)}

    def _config(self):
        return {"class_aggregation": self.class_aggregation, "num_regressors": self.num_regressors}

    def _result(self, s):
        if s is None:
            return 0.0
        mean = s["sum"] / s["count"]
        total_ss = s["squared"] - s["sum"] * mean
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = 1 - s["residual"] / total_ss
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = np.mean(raw)
        elif self.class_aggregation == "variance_weighted_average":
            score = np.sum(total_ss * raw) / np.sum(total_ss)
        else:
            return raw
        n, p = float(np.sum(s["count"])), self.num_regressors  # Keras' num_samples: the entries seen
        if p and p < n - 1:  # Keras falls back to the plain score (with a warning) otherwise
            score = 1 - (1 - score) * (n - 1) / (n - p - 1)
        return float(score)
