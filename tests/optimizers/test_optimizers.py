"""Optimizers, clipping and schedules: the NumPy reference against real Keras 3 (a peer run in a
subprocess) on the same weights and gradient sequence; ReduceLROnPlateau's rules."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential, optimizers
from mlp_gpu.optimizers import schedules
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.callbacks.learning_rate import ReduceLROnPlateau

from ..harness.host_ops import HostCudaOps, compiler
from ..keras.test_interop import _importable

STEPS = 6
SHAPES = [(7, 5), (5,)]
EXP = {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.05, "decay_steps": 2,
                                                    "decay_rate": 0.5, "staircase": True}}
COS = {"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.0, "decay_steps": 4, "alpha": 0.1,
                                               "warmup_target": 0.02, "warmup_steps": 2}}
CASES = {  # id: (class, kwargs); a dict learning_rate is a serialized schedule
    "sgd-momentum-clipnorm": ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "clipnorm": 0.5}),
    "adam-clipvalue": ("Adam", {"learning_rate": 0.01, "clipvalue": 0.3}),
    "adamw": ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
    "nadam": ("Nadam", {"learning_rate": 0.01}),
    "nadam-exp-global-clip": ("Nadam", {"learning_rate": EXP, "global_clipnorm": 1.0}),
    "rmsprop": ("RMSprop", {"learning_rate": 0.01}),
    "rmsprop-centered-momentum": ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True,
                                              "weight_decay": 0.05}),
    "adagrad": ("Adagrad", {"learning_rate": 0.1}),
    "adamax": ("Adamax", {"learning_rate": 0.01}),
    "adamax-decay-clipnorm": ("Adamax", {"learning_rate": 0.02, "beta_1": 0.8, "weight_decay": 0.1, "clipnorm": 1.0}),
    "adagrad-cosine-warmup": ("Adagrad", {"learning_rate": COS}),
    "sgd-piecewise": ("SGD", {"learning_rate": {"class_name": "PiecewiseConstantDecay",
                                                "config": {"boundaries": [1, 3], "values": [0.1, 0.05, 0.01]}}}),
    "sgd-inverse-time": ("SGD", {"learning_rate": {"class_name": "InverseTimeDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5}}}),
}


def _problem():
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    grads = [[rng.normal(size=s).astype(np.float32) * 2 for s in SHAPES] for _ in range(STEPS)]
    return weights, grads


KERAS_SCRIPT = r"""
import json, sys
import numpy as np
import keras
cases, out = json.loads(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
shapes = [(7, 5), (5,)]
weights = [rng.normal(size=s).astype(np.float32) for s in shapes]
grads = [[rng.normal(size=s).astype(np.float32) * 2 for s in shapes] for _ in range(%d)]
results = {}
for key, (cls, kwargs) in cases.items():
    kwargs = dict(kwargs)
    if isinstance(kwargs["learning_rate"], dict):
        kwargs["learning_rate"] = keras.optimizers.schedules.deserialize(kwargs["learning_rate"])
    opt = getattr(keras.optimizers, cls)(**kwargs)
    vs = [keras.Variable(w) for w in weights]
    for step in grads:
        opt.apply([keras.ops.convert_to_tensor(g) for g in step], vs)
    for i, v in enumerate(vs):
        results[f"{key}/{i}"] = keras.ops.convert_to_numpy(v)
np.savez(out, **results)
""" % STEPS


@pytest.fixture(scope="module")
def keras_results(tmp_path_factory):
    if not (_importable("keras") and _importable("torch")):
        pytest.skip("Keras with PyTorch (make peers) is not installed")
    tmp = tmp_path_factory.mktemp("keras_opt")
    script = tmp / "opt.py"
    script.write_text(KERAS_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(script), json.dumps(CASES), str(tmp / "out.npz")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(tmp / "out.npz"))


def run_ours(cls, kwargs, backend=None):
    kwargs = dict(kwargs)
    if isinstance(kwargs["learning_rate"], dict):
        kwargs["learning_rate"] = schedules.deserialize(kwargs["learning_rate"])
    be = backend or NumpyBackend()
    opt = getattr(optimizers, cls)(**kwargs)
    weights, grads = _problem()
    sizes = [w.size for w in weights]
    opt.build(be, sum(sizes), segments=[0, sizes[0], sum(sizes)])
    params = be.asarray(np.concatenate([w.ravel() for w in weights]))
    cursor = be.zeros(1, np.int64)
    for step in grads:
        opt.update(params, be.asarray(np.concatenate([g.ravel() for g in step])))
        be.advance(cursor, 0, opt.hyper)
    flat = be.to_host(params)
    return [flat[:sizes[0]].reshape(SHAPES[0]), flat[sizes[0]:].reshape(SHAPES[1])], opt


@pytest.mark.parametrize("case", sorted(CASES))
def test_updates_match_keras(case, keras_results):
    ours, _ = run_ours(*CASES[case])
    for i, got in enumerate(ours):
        np.testing.assert_allclose(got, keras_results[f"{case}/{i}"], rtol=2e-5, atol=2e-6)


@pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
@pytest.mark.parametrize("case", sorted(CASES))
def test_kernels_match_the_reference(case):
    """Every optimizer's kernels (run on the CPU by the host harness) against its NumPy rule."""
    cls, kwargs = CASES[case]
    want, _ = run_ours(cls, kwargs)
    got, _ = run_ours(cls, kwargs, HostCudaOps())
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule,steps", [
    (schedules.ExponentialDecay(0.1, 10, 0.5), [0, 5, 10, 33]),
    (schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True), [0, 9, 10, 33]),
    (schedules.InverseTimeDecay(0.1, 4, 2.0), [0, 1, 8]),
    (schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), [0, 10, 11, 20, 21, 1000]),
    (schedules.CosineDecay(0.1, 100, alpha=0.2), [0, 50, 100, 500]),
    (schedules.CosineDecay(0.0, 100, warmup_target=0.1, warmup_steps=10), [0, 5, 10, 60, 500]),
])
def test_schedule_formulas(schedule, steps):
    """The closed forms of Keras' docstrings, step by step."""
    cfg = schedule.get_config()
    for step in steps:
        if isinstance(schedule, schedules.ExponentialDecay):
            p = step / 10 if not cfg["staircase"] else step // 10
            want = 0.1 * 0.5 ** p
        elif isinstance(schedule, schedules.InverseTimeDecay):
            want = 0.1 / (1 + 2.0 * step / 4)
        elif isinstance(schedule, schedules.PiecewiseConstantDecay):
            want = 1.0 if step <= 10 else 0.5 if step <= 20 else 0.1
        elif cfg["warmup_target"] is None:
            want = 0.1 * (0.8 * 0.5 * (1 + np.cos(np.pi * min(step, 100) / 100)) + 0.2)
        else:
            want = 0.1 * step / 10 if step < 10 else 0.1 * 0.5 * (1 + np.cos(np.pi * min(step - 10, 100) / 100))
        assert schedule(step) == pytest.approx(want, rel=1e-12, abs=1e-15), step


def test_schedule_runs_from_the_device_counter_and_round_trips_in_config():
    _, opt = run_ours("SGD", {"learning_rate": EXP})
    assert opt.iterations == STEPS and opt.learning_rate == pytest.approx(0.05 * 0.5 ** 3)
    assert opt.hyper[0] == np.float32(0.05 * 0.5 ** 2)  # the rate the last step used, written by the device op
    again = optimizers.from_config(opt.get_config())
    assert isinstance(again.schedule, schedules.ExponentialDecay) and again.schedule.get_config()["decay_rate"] == 0.5
    with pytest.raises(TypeError, match="cannot be set"):
        opt.learning_rate = 0.1


def test_clip_arguments_are_exclusive_and_checked():
    with pytest.raises(ValueError, match="only one of clipnorm, clipvalue and global_clipnorm"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match=r"RMSprop\(clipnorm\): expected a positive"):
        optimizers.RMSprop(clipnorm=-1)
    with pytest.raises(ValueError, match="AdamW"):
        optimizers.AdamW(weight_decay=None)


def test_nadam_resumes_its_momentum_product(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, 40).astype(np.int32)
    model = Sequential([Input((4,)), Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="nadam", seed=0)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    model.save(tmp_path / "m.h5")
    from mlp_gpu import load_model
    loaded = load_model(tmp_path / "m.h5", backend="numpy")
    assert loaded.optimizer.hyper[8] == model.optimizer.hyper[8] != 1.0  # u_product slot
    for m in (model, loaded):
        m.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=5)
    np.testing.assert_array_equal(model.get_weights()[0], loaded.get_weights()[0])


class _FakeModel:
    def __init__(self):
        self.optimizer = optimizers.SGD(1.0)
        self.optimizer.build(NumpyBackend(), 1)


def test_reduce_lr_on_plateau_follows_keras_rules():
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    cb.set_model(_FakeModel())
    cb.on_train_begin()
    rates = []
    for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]):
        logs = {"val_loss": loss}
        cb.on_epoch_end(epoch, logs)
        rates.append(logs["learning_rate"])
    # patience 2: halved at the end of epoch 3; the cooldown epoch still counts a wait (as in Keras);
    # halved again at 5; 0.125 is floored at min_lr 0.2; at min_lr no more reductions
    assert rates == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2])
    assert cb.model.optimizer.learning_rate == pytest.approx(0.2)
