"""The cases both sides run and the Keras 3 peer that runs them (a subprocess with the PyTorch backend):
each optimizer case takes STEPS updates from the same weights with the same gradients; the peer also
reports each case's get_config, its EMA averages, its optimizers' default names and schedule values."""
import json
import os
import subprocess
import sys

import numpy as np

from mlp_gpu import optimizers
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.optimizers import schedules

STEPS = 6
SHAPES = [(7, 5), (5,)]
EXP = {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.05, "decay_steps": 2,
                                                    "decay_rate": 0.5, "staircase": True}}
COS = {"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.0, "decay_steps": 4, "alpha": 0.1,
                                               "warmup_target": 0.02, "warmup_steps": 2}}
POLY = {"class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 4,
                                                    "end_learning_rate": 0.01, "power": 2.0}}
POLY_CYCLE = {"class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 2,
                                                          "power": 0.5, "cycle": True}}
RESTARTS = {"class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.1, "first_decay_steps": 2,
                                                            "t_mul": 2.0, "m_mul": 0.5, "alpha": 0.1}}
RESTARTS_FLAT = {"class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 0.1,
                                                                 "first_decay_steps": 3, "t_mul": 1.0, "m_mul": 0.8}}
CASES = {  # id: (class, kwargs); a dict learning_rate is a serialized schedule
    "sgd-momentum-clipnorm": ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "clipnorm": 0.5}),
    "sgd-nesterov-decay": ("SGD", {"learning_rate": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    "adam-clipvalue": ("Adam", {"learning_rate": 0.01, "clipvalue": 0.3}),
    "adam-amsgrad": ("Adam", {"learning_rate": 0.05, "amsgrad": True, "beta_2": 0.9}),
    "adam-amsgrad-global-clip": ("Adam", {"learning_rate": 0.05, "amsgrad": True, "global_clipnorm": 2.0}),
    "adamw": ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
    "adamw-amsgrad-clipnorm": ("AdamW", {"learning_rate": 0.02, "amsgrad": True, "clipnorm": 1.0}),
    "nadam": ("Nadam", {"learning_rate": 0.01}),
    "nadam-exp-global-clip": ("Nadam", {"learning_rate": EXP, "global_clipnorm": 1.0}),
    "rmsprop": ("RMSprop", {"learning_rate": 0.01}),
    "rmsprop-centered-momentum": ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True,
                                              "weight_decay": 0.05}),
    "rmsprop-clipvalue": ("RMSprop", {"learning_rate": 0.01, "clipvalue": 0.5}),
    "adagrad": ("Adagrad", {"learning_rate": 0.1}),
    "adagrad-global-clip-decay": ("Adagrad", {"learning_rate": 0.1, "global_clipnorm": 1.5, "weight_decay": 0.2}),
    "adamax": ("Adamax", {"learning_rate": 0.01}),
    "adamax-decay-clipnorm": ("Adamax", {"learning_rate": 0.02, "beta_1": 0.8, "weight_decay": 0.1, "clipnorm": 1.0}),
    "adadelta": ("Adadelta", {"learning_rate": 1.0}),
    "adadelta-decay-clipvalue": ("Adadelta", {"learning_rate": 0.5, "rho": 0.8, "epsilon": 1e-5,
                                              "weight_decay": 0.1, "clipvalue": 0.4}),
    "ftrl": ("Ftrl", {"learning_rate": 0.1}),
    "ftrl-regularized": ("Ftrl", {"learning_rate": 0.2, "learning_rate_power": -0.7, "initial_accumulator_value": 0.3,
                                  "l1_regularization_strength": 0.05, "l2_regularization_strength": 0.02,
                                  "l2_shrinkage_regularization_strength": 0.01, "beta": 0.1}),
    "ftrl-clipnorm-decay": ("Ftrl", {"learning_rate": 0.1, "clipnorm": 1.0, "weight_decay": 0.1}),
    "lion": ("Lion", {"learning_rate": 0.01}),
    "lion-decay-global-clip": ("Lion", {"learning_rate": 0.02, "beta_1": 0.5, "beta_2": 0.9, "weight_decay": 0.2,
                                        "global_clipnorm": 1.0}),
    "sgd-ema": ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "use_ema": True, "ema_momentum": 0.8}),
    "adam-ema-overwrite": ("Adam", {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.7,
                                    "ema_overwrite_frequency": 2}),
    "sgd-accumulation": ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "gradient_accumulation_steps": 3}),
    "adam-accumulation-clipnorm": ("Adam", {"learning_rate": 0.05, "gradient_accumulation_steps": 2,
                                            "clipnorm": 1.0, "weight_decay": 0.1}),
    "nadam-accumulation-schedule": ("Nadam", {"learning_rate": EXP, "gradient_accumulation_steps": 2}),
    "adamax-accumulation": ("Adamax", {"learning_rate": 0.05, "gradient_accumulation_steps": 3}),
    "rmsprop-accumulation-ema": ("RMSprop", {"learning_rate": 0.01, "gradient_accumulation_steps": 2,
                                             "use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 2}),
    "lion-accumulation": ("Lion", {"learning_rate": 0.05, "gradient_accumulation_steps": 2}),
    "adagrad-cosine-warmup": ("Adagrad", {"learning_rate": COS}),
    "sgd-piecewise": ("SGD", {"learning_rate": {"class_name": "PiecewiseConstantDecay",
                                                "config": {"boundaries": [1, 3], "values": [0.1, 0.05, 0.01]}}}),
    "sgd-inverse-time": ("SGD", {"learning_rate": {"class_name": "InverseTimeDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5}}}),
    "sgd-polynomial": ("SGD", {"learning_rate": POLY}),
    "adam-polynomial-cycle": ("Adam", {"learning_rate": POLY_CYCLE}),
    "sgd-cosine-restarts": ("SGD", {"learning_rate": RESTARTS, "momentum": 0.5}),
    "rmsprop-cosine-restarts-flat": ("RMSprop", {"learning_rate": RESTARTS_FLAT}),
}
SCHEDULE_CASES = [EXP, COS, POLY, POLY_CYCLE, RESTARTS, RESTARTS_FLAT,
                  {"class_name": "PolynomialDecay", "config": {"initial_learning_rate": 1.0, "decay_steps": 7}},
                  {"class_name": "CosineDecayRestarts", "config": {"initial_learning_rate": 1.0,
                                                                   "first_decay_steps": 5, "t_mul": 1.5}},
                  {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 10,
                                                                "decay_rate": 0.9}},
                  {"class_name": "InverseTimeDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 3,
                                                                "decay_rate": 0.5, "staircase": True}},
                  {"class_name": "PiecewiseConstantDecay", "config": {"boundaries": [2, 5],
                                                                      "values": [0.3, 0.2, 0.1]}}]
SCHEDULE_STEPS = [0, 1, 2, 3, 4, 5, 7, 9, 11, 13, 17, 26, 40, 99]
CLASSES = ["SGD", "Adam", "AdamW", "Nadam", "RMSprop", "Adagrad", "Adamax", "Adadelta", "Ftrl", "Lion"]


def problem():
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    grads = [[rng.normal(size=s).astype(np.float32) * 2 for s in SHAPES] for _ in range(STEPS)]
    return weights, grads


KERAS_SCRIPT = r"""
import json, sys
import numpy as np
import keras
cases, schedule_cases, schedule_steps, classes = (json.loads(a) for a in sys.argv[1:5])
out = sys.argv[5]
import inspect
schedule_classes = ["ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay",
                    "CosineDecay", "CosineDecayRestarts"]
report = {"default_names": {c: getattr(keras.optimizers, c)().name for c in classes}, "configs": {},
          "iterations": {}, "learning_rate": {}, "schedules": [],
          "signatures": {name: str(inspect.signature(obj)) for name, obj in
                         [(c, getattr(keras.optimizers, c)) for c in classes]
                         + [("Optimizer.__init__", keras.optimizers.Optimizer.__init__)]
                         + [(f, getattr(keras.optimizers, f)) for f in ("get", "serialize", "deserialize")]
                         + [("schedules." + c, getattr(keras.optimizers.schedules, c)) for c in schedule_classes]
                         + [("schedules." + f, getattr(keras.optimizers.schedules, f))
                            for f in ("serialize", "deserialize")]}}
rng = np.random.default_rng(0)
shapes = [(7, 5), (5,)]
weights = [rng.normal(size=s).astype(np.float32) for s in shapes]
grads = [[rng.normal(size=s).astype(np.float32) * 2 for s in shapes] for _ in range(%d)]
results = {}
for key, (cls, kwargs) in cases.items():
    kwargs = dict(kwargs, name=key)
    if isinstance(kwargs["learning_rate"], dict):
        kwargs["learning_rate"] = keras.optimizers.schedules.deserialize(kwargs["learning_rate"])
    opt = getattr(keras.optimizers, cls)(**kwargs)
    vs = [keras.Variable(w) for w in weights]
    for step in grads:
        opt.apply([keras.ops.convert_to_tensor(g) for g in step], vs)
    for i, v in enumerate(vs):
        results[f"{key}/{i}"] = keras.ops.convert_to_numpy(v)
    if opt.use_ema:
        for i, v in enumerate(opt._model_variables_moving_average):
            results[f"{key}/average{i}"] = keras.ops.convert_to_numpy(v)
    report["configs"][key] = opt.get_config()
    report["iterations"][key] = int(keras.ops.convert_to_numpy(opt.iterations))
    report["learning_rate"][key] = float(keras.ops.convert_to_numpy(opt.learning_rate))
for config in schedule_cases:
    schedule = keras.optimizers.schedules.deserialize(config)
    report["schedules"].append({"serialized": keras.optimizers.schedules.serialize(schedule),
                                "values": [float(keras.ops.convert_to_numpy(schedule(s))) for s in schedule_steps]})
np.savez(out + ".npz", **results)
with open(out + ".json", "w") as f:
    json.dump(report, f)
""" % STEPS


def run_keras(tmp):
    """The peer's arrays (npz) and report (json), or the subprocess' error."""
    script = tmp / "opt.py"
    script.write_text(KERAS_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": ""}
    args = [json.dumps(a) for a in (CASES, SCHEDULE_CASES, SCHEDULE_STEPS, CLASSES)]
    proc = subprocess.run([sys.executable, str(script), *args, str(tmp / "out")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(tmp / "out.npz")), json.loads((tmp / "out.json").read_text())


def make(cls, kwargs, **extra):
    kwargs = dict(kwargs, **extra)
    if isinstance(kwargs["learning_rate"], dict):
        kwargs["learning_rate"] = schedules.deserialize(kwargs["learning_rate"])
    return getattr(optimizers, cls)(**kwargs)


def run_ours(cls, kwargs, backend=None, **extra):
    """(weights after STEPS updates, the optimizer) on ``backend`` (NumPy by default)."""
    be = backend or NumpyBackend()
    opt = make(cls, kwargs, **extra)
    weights, grads = problem()
    sizes = [w.size for w in weights]
    opt.build(be, sum(sizes), segments=[0, sizes[0], sum(sizes)])
    params = be.asarray(np.concatenate([w.ravel() for w in weights]))
    cursor = be.zeros(1, np.int64)
    for step in grads:
        opt.update(params, be.asarray(np.concatenate([g.ravel() for g in step])))
        be.advance(cursor, 0, opt.hyper)
    return split(be.to_host(params)), opt


def split(flat):
    flat = np.asarray(flat)
    n = int(np.prod(SHAPES[0]))
    return [flat[:n].reshape(SHAPES[0]), flat[n:].reshape(SHAPES[1])]
