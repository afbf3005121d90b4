"""The shared argument checks, and the fit seams others build on (data set, step runner)."""
import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential
from mlp_gpu._checks import check_bool, check_int, check_number
from mlp_gpu.training.fit import prepare_fit, run_epochs

from .conftest import blobs


@pytest.mark.parametrize("value", [True, 1.0, "3", None, 0])
def test_check_int_refuses_bools_floats_and_out_of_range(value):
    with pytest.raises(ValueError, match=r"epochs: expected an int >= 1, got "):
        check_int(value, "epochs", 1)


def test_check_int_accepts_numpy_ints_and_names_both_bounds():
    assert check_int(np.int64(3), "n", 1, 5) == 3 and type(check_int(np.int64(3), "n")) is int
    with pytest.raises(ValueError, match=r"n: expected an int in \[1, 5\], got 6"):
        check_int(6, "n", 1, 5)


@pytest.mark.parametrize("value", [0, -1e-9, float("inf"), float("nan"), True, "0.1"])
def test_check_number_positive(value):
    with pytest.raises(ValueError, match="lr: expected a positive finite number"):
        check_number(value, "lr", 0, low_open=True)


def test_check_number_interval_wording():
    assert check_number(np.float32(0.5), "split", 0, 1, high_open=True) == 0.5
    with pytest.raises(ValueError, match=r"split: expected a number in \[0, 1\), got 1"):
        check_number(1, "split", 0, 1, high_open=True)


def test_check_bool_refuses_strings():
    assert check_bool(np.bool_(True), "flag") is True
    with pytest.raises(ValueError, match="nesterov: expected True or False, got 'no'"):
        check_bool("no", "nesterov")


def _model():
    m = Sequential([Input((8,)), Dense(16, "relu"), Dense(3, "softmax")], backend="numpy")
    m.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"], seed=0)
    return m


def test_a_runner_taking_blocks_of_steps_trains_the_same_weights():
    """The loop hands a runner `block` steps per call (what graph blocks will do): same result."""
    x, y = blobs(n=330)
    one = _model()
    h1 = one.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=5)
    blocked = _model()
    run = prepare_fit(blocked, x, y, batch_size=32, epochs=2, seed=5)
    run.runner.block = 4  # 11 steps an epoch: blocks of 4, 4, 3
    h2 = run_epochs(blocked, run, verbose=0)
    for a, b in zip(one.get_weights(), blocked.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1.history == h2.history
