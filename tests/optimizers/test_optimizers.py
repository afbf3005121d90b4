"""Optimizers, clipping and schedules: the NumPy reference against real Keras 3 (a peer run in a
subprocess) on the same weights and gradient sequence; ReduceLROnPlateau's rules."""
import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential, optimizers
from mlp_gpu.optimizers import schedules
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.callbacks.learning_rate import ReduceLROnPlateau

from ..harness.host_ops import HostCudaOps, compiler
from .peer import CASES, EXP, STEPS, run_ours


@pytest.fixture(scope="module")
def keras_results(keras_peer):
    return keras_peer[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_updates_match_keras(case, keras_results):
    """The weights after STEPS steps (and with use_ema the moving averages) equal Keras'."""
    ours, opt = run_ours(*CASES[case])
    for i, got in enumerate(ours):
        np.testing.assert_allclose(got, keras_results[f"{case}/{i}"], rtol=2e-5, atol=2e-6)
    if opt.use_ema:
        average = opt.backend.to_host(opt._average)
        want = np.concatenate([keras_results[f"{case}/average{i}"].ravel() for i in range(2)])
        np.testing.assert_allclose(average, want, rtol=2e-5, atol=2e-6)


@pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
@pytest.mark.parametrize("case", sorted(CASES))
def test_kernels_match_the_reference(case):
    """Every optimizer's kernels (run on the CPU by the host harness) against its NumPy rule."""
    cls, kwargs = CASES[case]
    want, reference = run_ours(cls, kwargs)
    got, kernels = run_ours(cls, kwargs, HostCudaOps())
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kernels.state, reference.state, rtol=1e-5, atol=1e-6)
    if reference.use_ema:
        np.testing.assert_allclose(kernels._average, reference._average, rtol=1e-5, atol=1e-6)
    assert kernels.iterations == reference.iterations


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
