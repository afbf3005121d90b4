"""The toolbox kernels (dropout, normalization, gradients, optimizers) against the NumPy reference:
run on the CPU by the host harness, and by CuPy on a GPU when one is present (the ``dev`` fixture)."""
import numpy as np
import pytest

from mlp_gpu.optimizers import schedules
from mlp_gpu.backend.base import HYPER, HYPER_SIZE

from . import test_kernels
from .test_kernels import SIZES, _rand

dev, ref = test_kernels.dev, test_kernels.ref  # the same fixtures: the host harness, and CuPy on a GPU

SHAPES = [(1, 1), (31, 300), (33, 10), (1000, 33)]


def test_philox_kernel_known_answers(dev):
    ctr = np.array([[0, 0, 0, 0], [0xffffffff] * 4, [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344]], np.uint32)
    want = [[0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]]
    for row, key in zip(range(3), [(0, 0), (0xffffffff, 0xffffffff), (0xa4093822, 0x299f31d0)]):
        out = np.zeros(4, np.uint32)
        dev.philox_blocks(ctr[row].copy(), out, key)
        assert out.tolist() == want[row]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 1.0])
def test_dropout_same_mask_as_reference(dev, ref, n, rate):
    rng = np.random.default_rng(n)
    x = _rand(rng, n, 37)
    counter = np.array([2**33 + 5], np.int64)  # both counter words matter
    seed = 0x1234_5678_9abc_def0
    got, want = [np.empty_like(x) for _ in range(2)], [np.empty_like(x) for _ in range(2)]
    dev.dropout(x, got[0], got[1], counter, seed, rate)
    ref.dropout(x, want[0], want[1], counter, seed, rate)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    dy = _rand(rng, n, 37)
    got_dx, want_dx = np.empty_like(x), np.empty_like(x)
    dev.dropout_backward(dy, got[1], got_dx)
    ref.dropout_backward(dy, want[1], want_dx)
    np.testing.assert_array_equal(got_dx, want_dx)


@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_kernels(dev, ref, n, k, affine):
    rng = np.random.default_rng(n + k)
    x, dy = _rand(rng, n, k, scale=3) + 1, _rand(rng, n, k)
    gamma, beta = (_rand(rng, k), _rand(rng, k)) if affine else (None, None)
    results = []
    for be in (dev, ref):
        out, mm, mv = np.empty_like(x), _rand(rng, k) * 0 + 0.5, np.ones(k, np.float32)
        mean, inv = np.empty(k, np.float32), np.empty(k, np.float32)
        be.batchnorm_train(x, out, gamma, beta, mm, mv, mean, inv, 0.99, 1e-3)
        dg, db, dx = np.empty(k, np.float32), np.empty(k, np.float32), np.empty_like(x)
        be.batchnorm_backward(x, dy, gamma, mean, inv, dg if affine else None, db if affine else None, dx)
        inf = np.empty_like(x)
        be.batchnorm_infer(x, inf, gamma, beta, mm, mv, 1e-3)
        results.append((out, mm, mv, mean, inv, dg if affine else None, db if affine else None, dx, inf))
    for got, want in zip(*results):
        if want is not None:
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("mode", ["forward", "backward", "invert"])
def test_normalize(dev, ref, n, k, mode):
    rng = np.random.default_rng(n * k)
    x, mean = _rand(rng, n, k), _rand(rng, k)
    variance = np.abs(_rand(rng, k))
    variance[0] = 0.0  # the 1e-7 floor
    got, want = np.empty_like(x), np.empty_like(x)
    for be, out in ((dev, got), (ref, want)):
        be.normalize(x, out, None if mode == "backward" else mean, variance, invert=mode == "invert")
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("size", SIZES)
def test_regularize(dev, ref, size):
    rng = np.random.default_rng(size)
    w, g = _rand(rng, size), _rand(rng, size)
    w[0] = 0.0  # sign(0) = 0
    got_g, want_g = g.copy(), g.copy()
    got_acc, want_acc = np.array([1.5, 2.0, 0.0]), np.array([1.5, 2.0, 0.0])
    dev.regularize(w, got_g, 0.01, 0.02, got_acc, 32)
    ref.regularize(w, want_g, 0.01, 0.02, want_acc, 32)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_acc, want_acc, rtol=1e-6)  # l1, l2 reach the kernel as float32
    dev.regularize(w, None, 0.01, 0.02, got_acc, 32)  # the penalty alone
    assert got_acc[0] - 1.5 == pytest.approx(2 * (want_acc[0] - 1.5), rel=1e-6)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["value", "norm", "global", "nan"])
def test_clipping(dev, ref, size, mode):
    rng = np.random.default_rng(size)
    g = _rand(rng, size, scale=2)
    if mode == "nan":
        g[-1] = np.inf
    cut = sorted({0, size // 3, size // 2, size})
    segments = np.array([0, size] if mode in ("global", "nan") else cut, np.int64)
    got, want = g.copy(), g.copy()
    for be, arr in ((dev, got), (ref, want)):
        if mode == "value":
            be.clip_by_value(arr, 0.5)
        else:
            be.clip_by_norm(arr, segments, 1.0)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    if mode == "nan":
        assert np.isnan(got).all()


TABLES = [schedules.constant(0.1), schedules.ExponentialDecay(0.1, 7, 0.5, staircase=True).encode(),
          schedules.PiecewiseConstantDecay([3, 9], [0.3, 0.2, 0.1]).encode(),
          schedules.InverseTimeDecay(0.1, 4, 0.5).encode(), schedules.CosineDecay(0.1, 20, alpha=0.1).encode(),
          schedules.CosineDecay(0.0, 20, warmup_target=0.2, warmup_steps=5).encode()]


@pytest.mark.parametrize("table", range(len(TABLES)))
@pytest.mark.parametrize("step", [0, 3, 4, 9, 12, 40])
def test_optimizer_prepare(dev, ref, table, step):
    hyper = np.zeros(HYPER_SIZE, np.float32)
    hyper[HYPER["iterations"]], hyper[HYPER["beta_1"]], hyper[HYPER["u_product"]] = step, 0.9, 0.7
    got, want = hyper.copy(), hyper.copy()
    dev.optimizer_prepare(got, TABLES[table].copy(), True)
    ref.optimizer_prepare(want, TABLES[table], True)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[HYPER["lr"]] == pytest.approx(schedules.evaluate(TABLES[table], step), rel=1e-6)


def _hyper(**values):
    h = np.zeros(HYPER_SIZE, np.float32)
    base = dict(lr=0.01, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-7, iterations=4, rho=0.9,
                u_product=0.3)
    for key, value in {**base, **values}.items():
        h[HYPER[key]] = value
    return h


OPTIMIZERS = ["rmsprop", "rmsprop-momentum-centered", "adagrad", "nadam", "sgd-decay", "momentum-decay",
              "adam-decay"]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_optimizer_updates(dev, ref, opt, size):
    rng = np.random.default_rng(size)
    w, g = _rand(rng, size), _rand(rng, size)
    slots = [np.abs(_rand(rng, size, scale=0.1)) for _ in range(3)]
    hyper = _hyper(weight_decay=0.05 if "decay" in opt or opt == "nadam" else 0.0)
    got = [a.copy() for a in [w, g] + slots]
    want = [a.copy() for a in [w, g] + slots]
    for be, (pw, pg, s0, s1, s2) in ((dev, got), (ref, want)):
        if opt == "rmsprop":
            be.rmsprop_update(pw, pg, s0, None, None, hyper)
        elif opt == "rmsprop-momentum-centered":
            be.rmsprop_update(pw, pg, s0, s1, s2 * 0.1, hyper)
        elif opt == "adagrad":
            be.adagrad_update(pw, pg, s0, hyper)
        elif opt == "nadam":
            be.nadam_update(pw, pg, s0, s1, hyper)
        elif opt == "adam-decay":
            be.adam_update(pw, pg, s0, s1, hyper)
        else:
            be.sgd_update(pw, pg, s0 if opt == "momentum-decay" else None, hyper)
    for got_a, want_a in zip(got[:1] + got[2:], want[:1] + want[2:]):
        np.testing.assert_allclose(got_a, want_a, rtol=2e-6, atol=1e-7)
