"""Optimizers and schedules as Keras 3 shows them: signatures, get_config, default names, iterations and
schedule values against the Keras peer (tests/optimizers/peer.py); get / serialize / deserialize round
trips; every bad argument raising with its name; use_ema, gradient accumulation and loss scaling in fit."""
import inspect
import warnings

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential, load_model, optimizers
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.backend.base import HYPER, HYPER_SIZE
from mlp_gpu.optimizers import schedules

from ..harness.host_ops import HostCudaOps, compiler
from .peer import CASES, CLASSES, EXP, SCHEDULE_CASES, SCHEDULE_STEPS, make, run_ours

SCHEDULE_CLASSES = ["ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay",
                    "CosineDecay", "CosineDecayRestarts"]


@pytest.fixture(scope="module")
def report(keras_peer):
    return keras_peer[1]


def _ours(name):
    """Our object for a name of the peer's signature table."""
    if name == "Optimizer.__init__":
        return optimizers.Optimizer.__init__
    if name.startswith("schedules."):
        return getattr(schedules, name.split(".", 1)[1])
    return getattr(optimizers, name)


SIGNATURES = (CLASSES + ["Optimizer.__init__", "get", "serialize", "deserialize"]
              + [f"schedules.{c}" for c in SCHEDULE_CLASSES] + ["schedules.serialize", "schedules.deserialize"])


@pytest.mark.parametrize("name", SIGNATURES)
def test_signatures_are_keras(name, report):
    assert str(inspect.signature(_ours(name))) == report["signatures"][name]


@pytest.mark.parametrize("case", sorted(CASES))
def test_get_config_iterations_and_rate_are_keras(case, report):
    _, opt = run_ours(*CASES[case], name=case)
    assert opt.get_config() == report["configs"][case]
    assert list(opt.get_config()) == list(report["configs"][case])  # Keras' key order too
    assert opt.iterations == report["iterations"][case]
    assert float(opt.learning_rate) == pytest.approx(report["learning_rate"][case], rel=1e-6)


def test_default_names_are_keras(report):
    assert {c: getattr(optimizers, c)().name for c in CLASSES} == report["default_names"]


@pytest.mark.parametrize("index", range(len(SCHEDULE_CASES)))
def test_schedules_are_keras(index, report):
    """Values at many steps (Keras computes in float32, we in float64), and the serialized form."""
    want = report["schedules"][index]
    ours = schedules.deserialize(SCHEDULE_CASES[index])
    np.testing.assert_allclose([ours(s) for s in SCHEDULE_STEPS], want["values"], rtol=3e-6, atol=5e-8)
    assert schedules.serialize(ours) == want["serialized"]
    assert schedules.serialize(schedules.deserialize(want["serialized"])) == want["serialized"]


@pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
@pytest.mark.parametrize("index", range(len(SCHEDULE_CASES)))
def test_schedule_kernel_matches_the_reference(index):
    """optimizer_prepare (kernels/gradients.cu, on the host harness) evaluates each table as ``evaluate``."""
    be, table = HostCudaOps(), schedules.deserialize(SCHEDULE_CASES[index]).encode()
    for step in SCHEDULE_STEPS:
        hyper = np.zeros(HYPER_SIZE, np.float32)
        hyper[HYPER["iterations"]] = step
        be.optimizer_prepare(hyper, table, False)
        assert hyper[HYPER["lr"]] == pytest.approx(schedules.evaluate(table, step), rel=1e-6, abs=1e-12), step


@pytest.mark.parametrize("case", sorted(CASES))
def test_serialize_deserialize_round_trip(case):
    opt = make(*CASES[case], name=case)
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert type(again) is type(opt) and again.get_config() == opt.get_config()
    assert type(opt).from_config(opt.get_config()).get_config() == opt.get_config()


def test_get_follows_keras():
    assert optimizers.get(None) is None
    opt = optimizers.Lion()
    assert optimizers.get(opt) is opt
    assert isinstance(optimizers.get("Adam"), optimizers.Adam) and isinstance(optimizers.get("ftrl"), optimizers.Ftrl)
    got = optimizers.get({"class_name": "RMSprop", "config": {"learning_rate": 0.5, "centered": True}})
    assert isinstance(got, optimizers.RMSprop) and got.centered and float(got.learning_rate) == 0.5
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        optimizers.get(3)
    with pytest.raises(ValueError, match=r"optimizer: expected one of \['adadelta', .*got 'nope'"):
        optimizers.get("nope")


class MyAdam(optimizers.Adam):
    """A user's optimizer: serialized under its own name, found through custom_objects."""


class Halving(schedules.LearningRateSchedule):
    """A user's schedule without a device table."""

    def __call__(self, step):
        return 0.1 / 2 ** step

    def get_config(self):
        return {}


def test_custom_objects():
    opt = MyAdam(0.01, name="mine")
    config = optimizers.serialize(opt)
    assert config["class_name"] == "MyAdam" and config["registered_name"] == "MyAdam"
    with pytest.raises(ValueError, match="custom_objects"):
        optimizers.deserialize(config)
    again = optimizers.deserialize(config, custom_objects={"MyAdam": MyAdam})
    assert type(again) is MyAdam and again.get_config() == opt.get_config()
    schedule = {"class_name": "Halving", "config": {}}
    assert isinstance(schedules.deserialize(schedule, custom_objects={"Halving": Halving}), Halving)
    with pytest.raises(TypeError, match=r"SGD\(learning_rate\): Halving has no encode"):
        optimizers.SGD(Halving())


def test_bare_configs_with_default_names_still_load():
    """Model files here keep an optimizer as its bare get_config(); its default name finds the class."""
    for cls in (optimizers.AdamW, optimizers.RMSprop, optimizers.Ftrl, optimizers.SGD):
        opt = cls(learning_rate=0.25)
        again = optimizers.from_config(opt.get_config())
        assert type(again) is cls and again.get_config() == opt.get_config()
    with pytest.raises(ValueError, match="optimizers.serialize"):
        optimizers.from_config(optimizers.Adam(name="mine").get_config())


BAD = [
    (lambda: optimizers.SGD(momentum=1.5), ValueError, r"SGD\(momentum\): expected a number in \[0, 1\]"),
    (lambda: optimizers.SGD(nesterov="yes"), ValueError, r"SGD\(nesterov\)"),
    (lambda: optimizers.Adam(amsgrad=1), ValueError, r"Adam\(amsgrad\): expected True or False"),
    (lambda: optimizers.AdamW(amsgrad="no"), ValueError, r"AdamW\(amsgrad\)"),
    (lambda: optimizers.Adam(foo=1), ValueError, r"Adam: argument\(s\) not recognized: \{'foo': 1\}"),
    (lambda: optimizers.SGD(learning_rate=lambda: 0.1), TypeError, r"SGD\(learning_rate\): a callable"),
    (lambda: optimizers.SGD(learning_rate=0), ValueError, r"SGD\(learning_rate\): expected a positive"),
    (lambda: optimizers.Nadam(use_ema="yes"), ValueError, r"Nadam\(use_ema\)"),
    (lambda: optimizers.SGD(use_ema=True, ema_momentum=1.5), ValueError, r"SGD\(ema_momentum\)"),
    (lambda: optimizers.SGD(use_ema=True, ema_overwrite_frequency=0), ValueError,
     r"SGD\(ema_overwrite_frequency\): expected an int >= 1"),
    (lambda: optimizers.SGD(use_ema=True, ema_overwrite_frequency=2.5), ValueError, r"ema_overwrite_frequency"),
    (lambda: optimizers.Adam(gradient_accumulation_steps=1), ValueError,
     r"Adam\(gradient_accumulation_steps\): expected an int >= 2"),
    (lambda: optimizers.Adam(gradient_accumulation_steps=2.0), ValueError, r"gradient_accumulation_steps"),
    (lambda: optimizers.RMSprop(loss_scale_factor=-1), ValueError, r"RMSprop\(loss_scale_factor\)"),
    (lambda: optimizers.SGD(name=3), ValueError, r"SGD\(name\): expected a string"),
    (lambda: optimizers.SGD(clipnorm=1.0, global_clipnorm=1.0), ValueError, "only one of clipnorm"),
    (lambda: optimizers.AdamW(weight_decay=None), ValueError, r"AdamW\(weight_decay\)"),
    (lambda: optimizers.Adadelta(rho=1.0), ValueError, r"Adadelta\(rho\)"),
    (lambda: optimizers.Adadelta(epsilon=0), ValueError, r"Adadelta\(epsilon\)"),
    (lambda: optimizers.Lion(beta_1=0), ValueError, r"Lion\(beta_1\): expected a number in \(0, 1\]"),
    (lambda: optimizers.Lion(beta_2=1.5), ValueError, r"Lion\(beta_2\)"),
    (lambda: optimizers.Ftrl(learning_rate_power=0.5), ValueError, r"Ftrl\(learning_rate_power\)"),
    (lambda: optimizers.Ftrl(initial_accumulator_value=-1), ValueError, r"Ftrl\(initial_accumulator_value\)"),
    (lambda: optimizers.Ftrl(l1_regularization_strength=-1), ValueError, r"Ftrl\(l1_regularization_strength\)"),
    (lambda: optimizers.Ftrl(l2_regularization_strength=-1), ValueError, r"Ftrl\(l2_regularization_strength\)"),
    (lambda: optimizers.Ftrl(l2_shrinkage_regularization_strength=-1), ValueError,
     r"Ftrl\(l2_shrinkage_regularization_strength\)"),
    (lambda: optimizers.Ftrl(beta="x"), ValueError, r"Ftrl\(beta\)"),
    (lambda: schedules.PolynomialDecay(0.1, 0), ValueError, r"PolynomialDecay\(decay_steps\)"),
    (lambda: schedules.PolynomialDecay(0.1, 5, power="x"), ValueError, r"PolynomialDecay\(power\)"),
    (lambda: schedules.CosineDecayRestarts(0.1, 0), ValueError, r"CosineDecayRestarts\(first_decay_steps\)"),
    (lambda: schedules.CosineDecayRestarts(0.1, 5, t_mul=0), ValueError, r"CosineDecayRestarts\(t_mul\)"),
    (lambda: schedules.deserialize({"class_name": "Nope"}), ValueError, "learning rate schedule"),
    (lambda: schedules.serialize(0.1), TypeError, "learning_rate_schedule: expected a LearningRateSchedule"),
    (lambda: optimizers.deserialize({"config": {}}), ValueError, "expected a dict with a class_name"),
    (lambda: optimizers.deserialize({"class_name": "SGD", "config": {"learning_rate": 0.1, "rho": 1}}), ValueError,
     r"SGD: argument\(s\) not recognized: {.rho.: 1}"),
    (lambda: optimizers.serialize("sgd"), TypeError, "optimizer: expected an Optimizer"),
]


@pytest.mark.parametrize("make_it,error,match", BAD)
def test_bad_arguments_raise_naming_them(make_it, error, match):
    with pytest.raises(error, match=match):
        make_it()


def test_keras_ema_checks_apply_only_with_use_ema_and_decay_is_ignored():
    """As Keras: ema_momentum and ema_overwrite_frequency are checked only when used; decay warns."""
    assert optimizers.SGD(ema_momentum=5).get_config()["ema_momentum"] == 5
    with pytest.warns(UserWarning, match="decay"):
        optimizers.SGD(decay=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizers.SGD(decay=None)


def _data(rows=32):
    rng = np.random.default_rng(3)
    return rng.normal(size=(rows, 4)).astype(np.float32), rng.integers(0, 3, rows).astype(np.int32)


def _fitted(optimizer, batch_size, epochs=1, weights=None):
    model = Sequential([Input((4,)), Dense(5, "relu"), Dense(3, "softmax")], backend="numpy")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", seed=0)
    if weights is not None:
        model.set_weights(weights)
    x, y = _data()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    return model


def test_gradient_accumulation_in_fit_is_one_step_on_the_mean_gradient():
    """Four batches of 8 accumulated are one SGD step on the whole 32 rows (the mean of equal batch means)."""
    start = _fitted(optimizers.SGD(0.1), 32, epochs=0).get_weights()
    accumulated = _fitted(optimizers.SGD(0.5, gradient_accumulation_steps=4), 8, weights=start)
    whole = _fitted(optimizers.SGD(0.5), 32, weights=start)
    assert accumulated.optimizer.iterations == whole.optimizer.iterations == 1
    for a, b in zip(accumulated.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(start[0], whole.get_weights()[0])


def test_loss_scale_factor_leaves_the_updates_alone():
    """Keras scales the loss and unscales the gradients; both cancel (exactly for a power of two)."""
    start = _fitted(optimizers.SGD(0.1), 32, epochs=0).get_weights()
    scaled = _fitted(optimizers.Adam(0.01, loss_scale_factor=128.0), 8, weights=start)
    plain = _fitted(optimizers.Adam(0.01), 8, weights=start)
    for a, b in zip(scaled.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert scaled.optimizer.scale_loss(2.0) == 256.0 and plain.optimizer.scale_loss(2.0) == 2.0


def test_ema_in_fit_and_finalize_variable_values():
    """As Keras' fit: when training ends the weights become their moving average (finalize_variable_values)."""
    start = _fitted(optimizers.SGD(0.1), 32, epochs=0).get_weights()
    model = _fitted(optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5), 8, epochs=2, weights=start)
    plain = _fitted(optimizers.SGD(0.1), 8, epochs=2, weights=start)
    opt = model.optimizer
    average = opt.backend.to_host(opt._average).copy()
    np.testing.assert_array_equal(model.backend.to_host(model.params), average)
    assert not np.allclose(average, plain.backend.to_host(plain.params))  # the average, not the last weights
    opt.finalize_variable_values(model.params)
    np.testing.assert_array_equal(model.backend.to_host(model.params), average)
    with pytest.raises(ValueError, match="finalize_variable_values: expected the model's flat parameter buffer"):
        opt.finalize_variable_values(np.zeros(3, np.float32))


@pytest.mark.parametrize("optimizer", [
    lambda: optimizers.Adam(0.01, amsgrad=True), lambda: optimizers.Adadelta(1.0), lambda: optimizers.Lion(0.01),
    lambda: optimizers.Ftrl(0.1, l1_regularization_strength=0.001),
    lambda: optimizers.Nadam(0.01, gradient_accumulation_steps=2)])
def test_new_state_survives_save_and_load(tmp_path, optimizer):
    """State and counters round trip through our .h5; training on from the file equals training on."""
    model = _fitted(optimizer(), 8)
    model.save(tmp_path / "m.h5")
    loaded = load_model(tmp_path / "m.h5", backend="numpy")
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    np.testing.assert_array_equal(loaded.backend.to_host(loaded.optimizer.state),
                                  model.backend.to_host(model.optimizer.state))
    x, y = _data()
    for m in (model, loaded):
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_restored_state_restarts_the_moving_average_from_the_weights():
    """The EMA is not in a saved state: after load_state the next step's average is its weights, then blends."""
    weights, grads = np.ones(6, np.float32), np.full(6, 0.5, np.float32)
    opt = optimizers.SGD(0.1, use_ema=True, ema_momentum=0.9)
    be = NumpyBackend()
    opt.build(be, 6)
    opt.load_state(np.zeros((0, 6), np.float32), iterations=10)
    cursor = be.zeros(1, np.int64)
    for expected in (lambda w, a: w, lambda w, a: np.float32(0.9) * a + np.float32(0.1) * w):
        before = opt._average.copy()
        opt.update(weights, grads.copy())
        be.advance(cursor, 0, opt.hyper)
        np.testing.assert_allclose(opt._average, expected(weights, before), rtol=1e-6)


def test_accumulation_counts_updates_and_schedules_count_steps():
    _, opt = run_ours("SGD", {"learning_rate": EXP, "gradient_accumulation_steps": 2})
    assert opt.iterations == 3 and opt._get("iterations") == 6
    assert float(opt.learning_rate) == pytest.approx(0.05 * 0.5 ** 3)  # EXP at raw step 6
    opt.load_state(np.zeros((0, opt.state.shape[1]), np.float32), iterations=4)
    assert opt.iterations == 4 and opt._get("iterations") == 8
