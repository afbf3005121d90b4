"""fit through the CUDA backend's ops (every launch run on the CPU by the host harness) with the new
optimizers and options gives the NumPy backend's weights: the kernels, their launches and their order in
a training step, end to end."""
import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential, optimizers

from ..harness.host_ops import HostCudaOps, compiler

pytestmark = pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")

OPTIMIZERS = {
    "adam-amsgrad-ema": (lambda: optimizers.Adam(0.01, amsgrad=True, use_ema=True, ema_overwrite_frequency=3),
                         ["adam_amsgrad_update", "ema_update", "optimizer_prepare"]),
    "sgd-accumulation-clipnorm": (lambda: optimizers.SGD(0.1, gradient_accumulation_steps=2, clipnorm=0.5),
                                  ["accumulate_gradients", "clip_by_norm", "sgd_update"]),
    "nadam-accumulation": (lambda: optimizers.Nadam(0.01, gradient_accumulation_steps=3),
                           ["accumulate_gradients", "nadam_update"]),
    "adadelta": (lambda: optimizers.Adadelta(1.0, weight_decay=0.01), ["adadelta_update"]),
    "ftrl": (lambda: optimizers.Ftrl(0.1, l1_regularization_strength=0.001, beta=0.1), ["ftrl_update"]),
    "lion-polynomial": (lambda: optimizers.Lion(optimizers.schedules.PolynomialDecay(0.01, 5, cycle=True)),
                        ["lion_update", "optimizer_prepare"]),
}


def _train(backend, make):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 6)).astype(np.float32)  # batches of 16, 16, 16, 16 and 6
    y = rng.integers(0, 3, 70).astype(np.int32)
    model = Sequential([Input((6,)), Dense(8, "relu"), Dense(3, "softmax")], backend=backend)
    model.compile(optimizer=make(), loss="sparse_categorical_crossentropy", seed=5)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_fit_on_the_harness_matches_numpy(case):
    make, kernels = OPTIMIZERS[case]
    host = HostCudaOps()
    ours, ref = _train(host, make), _train("numpy", make)
    for got, want in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
    assert ours.optimizer.iterations == ref.optimizer.iterations
    assert set(kernels) <= set(host.launches), sorted(set(kernels) - set(host.launches))
