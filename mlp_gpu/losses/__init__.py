"""Losses with Keras 3's names, classes, functions, ``get``, ``serialize`` and ``deserialize``.

``base.py``: Keras' Loss and LossFunctionWrapper, and how a loss trains (a fused op or a traced row
program); ``functions.py``: Keras' per-sample functions, written once with mlp_gpu.ops; ``losses.py``:
the classes; ``targets.py``: the check of the targets a fit is given.
"""
from __future__ import annotations

from .. import custom_objects
from .base import REDUCTIONS, TRACED_REDUCTIONS, Loss, LossFunctionWrapper  # noqa: F401
from .functions import (  # noqa: F401 -- Keras' names
    BCE, EPSILON, KLD, MAE, MAPE, MSE, MSLE, bce, binary_crossentropy, categorical_crossentropy,
    categorical_hinge, cosine_similarity, hinge, huber, kl_divergence, kld, kullback_leibler_divergence, log_cosh,
    logcosh, mae, mape, mean_absolute_error, mean_absolute_percentage_error, mean_squared_error,
    mean_squared_logarithmic_error, mse, msle, poisson, sparse_categorical_crossentropy, squared_hinge)
from .losses import (  # noqa: F401
    CLASSES, BinaryCrossentropy, CategoricalCrossentropy, CategoricalHinge, CosineSimilarity, Hinge, Huber,
    KLDivergence, LogCosh, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredError,
    MeanSquaredLogarithmicError, Poisson, SparseCategoricalCrossentropy, SquaredHinge)
from .targets import check_targets  # noqa: F401

# each class by its Keras class name and its default name; each function by its name and Keras' aliases
LOSSES = {name: cls for cls in CLASSES for name in (cls.__name__, cls.name)}
FUNCTIONS = {cls.function: cls for cls in CLASSES}
LOSSES.update({fn.__name__: cls for fn, cls in FUNCTIONS.items()})
LOSSES.update({alias: FUNCTIONS[fn] for alias, fn in {
    "mse": mse, "MSE": mse, "mae": mae, "MAE": mae, "mape": mape, "MAPE": mape, "msle": msle, "MSLE": msle,
    "kld": kld, "KLD": kld, "bce": bce, "BCE": bce}.items()})


def get(identifier) -> Loss:
    """A Loss from an instance, a class, a Keras function (``losses.mean_squared_error``), a name
    (``"mse"``, ``"huber"``, ``"MeanSquaredError"``) or a saved config dict. (Keras returns the function for
    a function's name; compile needs the object, which gives the same values reduced over the batch.)"""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss) and identifier is not Loss:
        return identifier()
    if custom_objects.is_custom(identifier) and identifier.get("class_name") not in LOSSES:  # a user's (files)
        found = custom_objects.deserialize(identifier, "loss")
        return found if isinstance(found, Loss) else get(found)
    if isinstance(identifier, dict) and identifier.get("class_name") in LOSSES \
            and isinstance(identifier.get("config") or {}, dict):
        cls = LOSSES[identifier["class_name"]]
        return cls.from_config(dict(identifier.get("config") or {}))
    if isinstance(identifier, str) and identifier in LOSSES:
        return LOSSES[identifier]()
    try:
        if identifier in FUNCTIONS:
            return FUNCTIONS[identifier]()
    except TypeError:  # unhashable
        pass
    if callable(identifier) and not isinstance(identifier, type):
        return LossFunctionWrapper(identifier)
    raise ValueError(f"loss: expected one of {sorted(LOSSES)}, a mlp_gpu.losses class or function, "
                     f"got {identifier!r}")


def serialize(loss: Loss):
    """What a model file stores: a user's loss as Keras serializes it (by name); ours by name at Keras'
    defaults (what older files hold), else ``{"class_name", "config"}`` with Keras' config."""
    if not loss.builtin:
        return custom_objects.serialize(loss)
    config = loss.get_config()
    if config == type(loss)().get_config():
        return loss.name
    return {"class_name": type(loss).__name__, "config": config}


def deserialize(name, custom_objects=None):
    """Keras' ``deserialize``: a loss from a name or a serialized dict; ``custom_objects`` maps a user's
    names to their classes or functions."""
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise ValueError(f"deserialize(custom_objects): expected a dict or None, got {custom_objects!r}")
    custom = custom_objects or {}
    key = name.get("registered_name") or name.get("class_name") if isinstance(name, dict) else name
    if isinstance(key, str) and key in custom:
        found = custom[key]
        if isinstance(found, type):
            return found.from_config(dict(name.get("config") or {})) if isinstance(name, dict) else found()
        return get(found)
    return get(name)
