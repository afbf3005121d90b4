"""Keras 3's surface as an MLP user meets it, measured: each name looked up in mlp_gpu at Keras' place
and its signature compared with Keras' own (``inspect.signature`` of both; a class by its ``__init__``).

``python -m tests.keras.surface`` prints the report (with Keras 3 importable, ``KERAS_BACKEND=torch``);
``tests/keras/test_surface.py`` keeps it from getting worse.
"""
from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# Keras' module paths (relative to the package) and the names in each, most used first.
NAMES = {
    "activations": "relu sigmoid tanh softmax linear elu selu gelu silu swish leaky_relu relu6 softplus softsign "
                   "mish exponential hard_sigmoid hard_silu log_softmax get serialize deserialize",
    "layers": "Dense Input InputLayer Flatten Dropout BatchNormalization Normalization Lambda Activation ReLU "
              "LeakyReLU PReLU ELU Softmax LayerNormalization UnitNormalization GaussianNoise GaussianDropout "
              "AlphaDropout Reshape Rescaling Identity Layer Add Average Concatenate Maximum Minimum Multiply "
              "Subtract add average concatenate maximum minimum multiply subtract",
    "optimizers": "SGD Adam AdamW Nadam RMSprop Adagrad Adamax Adadelta Ftrl Lion Optimizer get serialize "
                  "deserialize",
    "optimizers.schedules": "ExponentialDecay PiecewiseConstantDecay PolynomialDecay InverseTimeDecay CosineDecay "
                            "CosineDecayRestarts LearningRateSchedule serialize deserialize",
    "losses": "Loss MeanSquaredError MeanAbsoluteError MeanAbsolutePercentageError MeanSquaredLogarithmicError "
              "BinaryCrossentropy CategoricalCrossentropy SparseCategoricalCrossentropy Huber LogCosh KLDivergence "
              "Poisson Hinge SquaredHinge CategoricalHinge CosineSimilarity mean_squared_error mean_absolute_error "
              "binary_crossentropy categorical_crossentropy sparse_categorical_crossentropy huber get serialize "
              "deserialize",
    "metrics": "Metric Mean Sum Accuracy BinaryAccuracy CategoricalAccuracy SparseCategoricalAccuracy "
               "TopKCategoricalAccuracy SparseTopKCategoricalAccuracy AUC Precision Recall F1Score R2Score "
               "MeanSquaredError MeanAbsoluteError MeanAbsolutePercentageError RootMeanSquaredError "
               "BinaryCrossentropy CategoricalCrossentropy SparseCategoricalCrossentropy get",
    "callbacks": "Callback CallbackList History EarlyStopping ModelCheckpoint LearningRateScheduler "
                 "ReduceLROnPlateau TensorBoard CSVLogger TerminateOnNaN LambdaCallback BackupAndRestore "
                 "ProgbarLogger RemoteMonitor",
    "initializers": "Initializer Constant Zeros Ones RandomNormal RandomUniform TruncatedNormal GlorotNormal "
                    "GlorotUniform HeNormal HeUniform LecunNormal LecunUniform VarianceScaling Orthogonal "
                    "Identity get",
    "regularizers": "Regularizer L1 L2 L1L2 l1 l2 l1_l2 get serialize deserialize",
    "constraints": "Constraint MaxNorm NonNeg UnitNorm MinMaxNorm max_norm non_neg unit_norm min_max_norm get",
    "models": "Model Sequential load_model save_model clone_model model_from_json",
    "saving": "load_model save_model register_keras_serializable get_custom_objects custom_object_scope "
              "serialize_keras_object deserialize_keras_object",
    "utils": "to_categorical normalize set_random_seed plot_model split_dataset",
    "backend": "floatx set_floatx epsilon set_epsilon clear_session backend",
    "datasets.fashion_mnist": "load_data",
    "datasets.mnist": "load_data",
    "": "Sequential Model Input Layer Loss Metric Optimizer Initializer Regularizer Variable version",
}
# Methods, by the class that carries them.
METHODS = {
    "Model": "compile fit evaluate predict train_on_batch test_on_batch predict_on_batch summary save save_weights "
             "load_weights get_weights set_weights get_config to_json get_layer count_params",
    "Sequential": "add pop",
    "layers.Layer": "get_weights set_weights get_config count_params build add_weight compute_output_shape",
}
# Attributes of instances (existence only): a compiled two-layer model, and its Dense layer.
MODEL_ATTRIBUTES = "layers weights trainable_weights non_trainable_weights trainable built optimizer metrics " \
                   "stop_training name inputs outputs"
DENSE_ATTRIBUTES = "kernel bias units activation trainable built weights trainable_weights " \
                   "non_trainable_weights name dtype"


@dataclass
class Entry:
    name: str      # Keras' dotted name, e.g. "layers.Dense" or "Model.fit"
    exists: bool
    compared: bool = False
    match: bool = False
    difference: str = ""


def lookup(root, dotted):
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def parameters(obj):
    """(name, kind, default) of each parameter, ``self`` dropped; None where there is no signature."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return [(p.name, p.kind.name, p.default) for p in params]


def same_default(a, b):
    if a is inspect.Parameter.empty or b is inspect.Parameter.empty:
        return a is b
    try:
        return type(a) in (int, float, bool, str, type(None), tuple, list) and bool(a == b) \
            and (isinstance(a, bool) == isinstance(b, bool))
    except Exception:  # noqa: BLE001 - a default that cannot be compared counts as different
        return False


def differences(ours, theirs) -> str:
    """'' where the two parameter lists agree in name, kind, order and default; else what differs."""
    if len(ours) != len(theirs) or any(a[:2] != b[:2] for a, b in zip(ours, theirs)):
        def show(ps):
            return ", ".join({"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(k, "") + n for n, k, _ in ps)
        return f"ours ({show(ours)}) vs Keras ({show(theirs)})"
    wrong = [f"{a[0]}={a[2]!r} (Keras {b[2]!r})" for a, b in zip(ours, theirs) if not same_default(a[2], b[2])]
    return "defaults: " + ", ".join(wrong) if wrong else ""


def _pairs():
    for module, names in NAMES.items():
        for name in names.split():
            yield f"{module}.{name}" if module else name
    for owner, names in METHODS.items():
        for name in names.split():
            yield f"{owner}.{name}"


def _instances(mlp_gpu):
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=(3,)), mlp_gpu.layers.Dense(2)], backend="numpy")
    model.compile(optimizer="sgd", loss="mse")
    return model, model.layers[-1]


def measure() -> list[Entry]:
    import keras

    import mlp_gpu
    entries = []
    for dotted in _pairs():
        try:
            theirs = lookup(keras, dotted)
        except AttributeError:
            raise AssertionError(f"{dotted} is not in Keras {keras.__version__}: the list is wrong") from None
        try:
            ours = lookup(mlp_gpu, dotted)
        except AttributeError:
            entries.append(Entry(dotted, False))
            continue
        a, b = parameters(ours), parameters(theirs)
        if b is None or not callable(theirs):
            entries.append(Entry(dotted, True))
            continue
        if a is None:
            entries.append(Entry(dotted, True, True, False, "ours has no signature"))
            continue
        diff = differences(a, b)
        entries.append(Entry(dotted, True, True, not diff, diff))
    model, dense = _instances(mlp_gpu)
    for prefix, obj, names in (("Model()", model, MODEL_ATTRIBUTES), ("Dense()", dense, DENSE_ATTRIBUTES)):
        for name in names.split():
            try:
                getattr(obj, name)
                entries.append(Entry(f"{prefix}.{name}", True))
            except Exception:  # noqa: BLE001 - any failure to read the attribute is a missing name
                entries.append(Entry(f"{prefix}.{name}", False))
    return entries


def summary(entries) -> dict:
    compared = [e for e in entries if e.compared]
    return {"names": len(entries), "exist": sum(e.exists for e in entries), "compared": len(compared),
            "match": sum(e.match for e in compared)}


KNOWN = os.path.join(os.path.dirname(__file__), "surface_known.py")
DEFAULT_REASON = "not yet Keras' (issue #25)"


def write_known(entries, path=KNOWN):
    """Rewrite ``surface_known.py`` from a measurement, keeping the reasons already written there."""
    try:
        from . import surface_known as old
        reasons = {**old.MISSING, **old.DIFFERENT}
    except ImportError:
        reasons = {}
    s = summary(entries)
    lines = ["# ruff: noqa: E501 - one entry per line, reasons in full",
             '"""What ``test_surface`` accepts today: names of Keras 3 that mlp_gpu lacks and signatures that',
             "differ, each with its reason; an entry that comes right must leave (the test says so). Written by",
             '``python -m tests.keras.surface --write``, which keeps the reasons; edit a reason by hand."""',
             f"FLOOR = {s!r}", "", "MISSING = {"]
    lines += [f"    {e.name!r}: {reasons.get(e.name, DEFAULT_REASON)!r}," for e in entries if not e.exists]
    lines += ["}", "", "DIFFERENT = {"]
    lines += [f"    {e.name!r}: {reasons.get(e.name, DEFAULT_REASON)!r},"
              for e in entries if e.compared and not e.match]
    lines += ["}", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    found = measure()
    if "--write" in sys.argv:
        write_known(found)
    for e in found:
        if not e.exists:
            print(f"missing    {e.name}")
        elif e.compared and not e.match:
            print(f"different  {e.name}: {e.difference}")
    s = summary(found)
    print(f"{s['names']} names, {s['exist']} exist, {s['compared']} compared, {s['match']} match "
          f"({100 * s['match'] / max(s['compared'], 1):.0f} %)")
