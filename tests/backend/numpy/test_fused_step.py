"""The NumPy backend's fused SGD step (backend/numpy/fused_step.py): taken exactly when nothing else reads the
gradients, and training to the weights of the general step (gradient buffer, then the optimizer's update)."""
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import SGD, Adam, BatchNormalization, Dense, Dropout, Input, Sequential, regularizers
from mlp_gpu.optimizers import schedules
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.backend.numpy import blas as prepared_blas
from mlp_gpu.backend.numpy.fused_step import FusedSgdStep
from mlp_gpu.training.fit import prepare_fit

from ...conftest import blobs


def fit(optimizer, fused, layers=None, loss="sparse_categorical_crossentropy", metrics=("accuracy",), y=None,
        epochs=2, callbacks=None, dtype="float32", **fit_args):
    """(weights, History, backend) of a short fit on blobs; 70 rows at batch 16: the last batch has 6 rows."""
    x, labels = blobs(n=70)
    backend = NumpyBackend(fused_step=fused)
    model = Sequential([Input((8,))] + (layers() if layers else [Dense(16, "relu"), Dense(12, "tanh"),
                                                                  Dense(3, "softmax")]),
                       backend=backend, dtype=dtype)
    model.compile(loss=loss, optimizer=optimizer() if callable(optimizer) else optimizer, metrics=list(metrics),
                  seed=1)
    history = model.fit(x, labels if y is None else y(labels), batch_size=16, epochs=epochs, verbose=0, seed=2,
                        callbacks=callbacks() if callbacks else None, **fit_args)
    return model.get_weights(), history, backend


def same_training(**kwargs):
    """Fit with and without the fused step; the same weights and logs within float32 rounding."""
    folded, h_folded, backend = fit(fused=True, **kwargs)
    general, h_general, _ = fit(fused=False, **kwargs)
    for a, b in zip(folded, general):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key, values in h_general.history.items():
        np.testing.assert_allclose(h_folded.history[key], values, rtol=1e-5, atol=1e-7)
    return backend, folded, general


def decaying():
    return SGD(schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.7))


@pytest.mark.parametrize("optimizer", [lambda: SGD(0.2), decaying], ids=["sgd", "schedule"])
def test_fused_step_trains_to_the_general_steps_weights(optimizer):
    backend, folded, _ = same_training(optimizer=optimizer)
    assert backend.route["route"] == "fused-sgd"
    assert backend.route["rows"] == 6  # the last, shorter batch folds too
    initial, _, _ = fit(optimizer, fused=True, epochs=0)
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(folded, initial))  # every weight moved


def test_a_schedule_is_read_every_step():
    """A rate frozen at its first value would train to other weights than the schedule's."""
    scheduled, _, _ = fit(decaying, fused=True)
    fixed, _, _ = fit(lambda: SGD(0.5), fused=True)
    assert np.abs(scheduled[0] - fixed[0]).max() > 1e-2


def test_a_rate_set_between_epochs_is_taken():
    def halve(epoch, lr):
        return lr / 2 if epoch else lr

    backend, _, _ = same_training(optimizer=lambda: SGD(0.3), epochs=3,
                                  callbacks=lambda: [mlp_gpu.callbacks.LearningRateScheduler(halve)])
    assert backend.route["route"] == "fused-sgd"


@pytest.mark.parametrize("loss,units,activation,targets", [
    ("mse", 1, "linear", lambda y: (y == 1).astype(np.float32)),
    ("binary_crossentropy", 1, "sigmoid", lambda y: (y == 1).astype(np.float32)),
    ("categorical_crossentropy", 3, "softmax", lambda y: np.eye(3, dtype=np.float32)[y])])
def test_other_losses_fold_to_the_same_weights(loss, units, activation, targets):
    backend, _, _ = same_training(optimizer=lambda: SGD(0.1), loss=loss, y=targets,
                                  layers=lambda: [Dense(16, "sigmoid"), Dense(units, activation)])
    assert backend.route["route"] == "fused-sgd"


@pytest.mark.parametrize("case,optimizer,kwargs", [
    ("momentum", lambda: SGD(0.1, momentum=0.9), {}),
    ("nesterov", lambda: SGD(0.1, momentum=0.5, nesterov=True), {}),
    ("clipnorm", lambda: SGD(0.1, clipnorm=0.01), {}),
    ("global_clipnorm", lambda: SGD(0.1, global_clipnorm=0.01), {}),
    ("clipvalue", lambda: SGD(0.1, clipvalue=0.001), {}),
    ("weight_decay", lambda: SGD(0.1, weight_decay=0.5), {}),
    ("adam", lambda: Adam(0.01), {}),
    ("regularizer", lambda: SGD(0.1), {"layers": lambda: [Dense(16, "relu", kernel_regularizer=regularizers.l2(0.1)),
                                                           Dense(3, "softmax")]}),
    ("dropout", lambda: SGD(0.1), {"layers": lambda: [Dense(16, "relu"), Dropout(0.0), Dense(3, "softmax")]}),
    ("batchnorm", lambda: SGD(0.1), {"layers": lambda: [Dense(16, "relu"), BatchNormalization(), Dense(3, "softmax")]}),
    ("metric", lambda: SGD(0.1), {"metrics": ("accuracy", "mae"), "loss": "categorical_crossentropy",
                                  "y": lambda y: np.eye(3, dtype=np.float32)[y]}),
    ("float64", lambda: SGD(0.1), {"dtype": "float64"}),
])
def test_general_step_whenever_something_else_reads_the_gradients(case, optimizer, kwargs):
    """Each of these reads or changes the gradients (or the step) between backward and update: no fold, and
    the general step trains as before."""
    weights, _, backend = fit(optimizer, fused=True, **kwargs)
    assert backend.route["route"] == "general", backend.route
    general, _, _ = fit(optimizer, fused=False, **kwargs)
    for a, b in zip(weights, general):
        np.testing.assert_array_equal(a, b)


def _prepared(optimizer="sgd"):
    x, y = blobs(n=40)
    model = Sequential([Input((8,)), Dense(4, "relu"), Dense(3, "softmax")], backend=NumpyBackend())
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, seed=0)
    run = prepare_fit(model, x, y, batch_size=8)
    return model, run


def test_no_fold_around_an_all_reduce_or_when_switched_off():
    model, run = _prepared()
    backend, data, sums = model.backend, run.train, run.sums.buffer
    noop = lambda: None  # noqa: E731
    backend.make_runner(noop, 8, split=(noop, noop, noop), model=model, data=data, acc=sums)
    assert backend.route["route"] == "general" and "distributed" in backend.route["reason"]
    backend.make_runner(noop, 8)
    assert backend.route["route"] == "general"
    backend.make_runner(noop, 8, model=model, data=data, acc=sums)
    assert backend.route["route"] == "fused-sgd"
    off = NumpyBackend(fused_step=False)
    off.make_runner(noop, 8, model=model, data=data, acc=sums)
    assert off.route == {"route": "general", "reason": "NumpyBackend(fused_step=False)", "rows": 8, "compiled": None}


def test_the_fused_step_refuses_what_it_cannot_train():
    model, run = _prepared(SGD(0.1, momentum=0.9))
    with pytest.raises(ValueError, match="not plain SGD"):
        FusedSgdStep(model.backend, model, run.train, run.sums.buffer, 8)
    with pytest.raises(ValueError, match="fused_step"):
        NumpyBackend(fused_step="yes")


def test_the_fused_step_writes_no_gradients_and_counts_the_step():
    model, run = _prepared()
    model.grads.fill(np.nan)  # nothing may read them: the weights stay finite
    step = FusedSgdStep(model.backend, model, run.train, run.sums.buffer, 8)
    before = model.get_weights()
    run.train.begin_epoch()
    step()
    assert np.isnan(model.grads).all()
    assert model.optimizer.iterations == 1 and int(run.train.cursor[0]) == 8
    after = model.get_weights()
    assert all(np.isfinite(w).all() and not np.array_equal(w, b) for w, b in zip(after, before))


LIBRARIES = [name for name in prepared_blas.LIBRARIES if prepared_blas.LIBRARIES[name]() is not None]


def test_scipy_blas_is_always_at_hand():
    assert "scipy" in LIBRARIES and prepared_blas.library() in LIBRARIES


@pytest.mark.parametrize("using", LIBRARIES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prepared_gemm_adds_into_strided_views_in_place(trans_a, trans_b, dtype, using):
    """c <- alpha op(a) op(b) + beta c on the first columns of wider buffers; the other columns untouched."""
    rng = np.random.default_rng(0)
    m, k, n = 5, 7, 3
    a = rng.normal(size=(k, m + 2) if trans_a else (m, k + 2)).astype(dtype)[:, :m if trans_a else k]
    b = rng.normal(size=(n, k + 1) if trans_b else (k, n + 1)).astype(dtype)[:, :k if trans_b else n]
    wide = rng.normal(size=(m, n + 3)).astype(dtype)
    before, c = wide.copy(), wide[:, :n]
    alpha = prepared_blas.cell(dtype, 0.5)
    call = prepared_blas.gemm(a, b, c, trans_a, trans_b, alpha=alpha, beta=1.0, using=using)
    alpha.value = -0.25  # read when called
    call()
    want = before[:, :n] - 0.25 * ((a.T if trans_a else a) @ (b.T if trans_b else b))
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(wide[:, n:], before[:, n:])


def test_prepared_gemm_refuses_what_blas_cannot_take():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="unit column stride"):
        prepared_blas.gemm(x, x[:, ::2], np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="does not give"):
        prepared_blas.gemm(x, x, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="float32 or float64"):
        prepared_blas.gemm(x, x.T, np.zeros((4, 4), np.int32))
