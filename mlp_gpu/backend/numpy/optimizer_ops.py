"""Reference ops of the optimizers beyond SGD and Adam, gradient clipping and the per-step
preparation (learning-rate schedule, Nadam's momentum product), on NumPy. Mixed into the NumPy
backend; ``cuda_layer_ops`` launches the kernels of ``kernels/optimizer.cu`` and ``kernels/gradients.cu``
(clipping, ``optimizer_prepare``) that are tested against these bodies.

Layout: w, g and each state slot are (size,) float32 over the model's whole flat buffer; hyper is
the optimizer's scalar buffer (slots ``HYPER``); g is scratch afterwards. Weight decay (Keras:
``w <- w - w * weight_decay * lr``) comes first in every update, when hyper's weight_decay is not 0.
With Keras' gradient accumulation (hyper's accumulation n >= 2) a step that only accumulates leaves w and
the state alone (``skipped``), and the formulas count updates (``update_count``): kernels/optimizer_steps.cuh.
"""
from __future__ import annotations

import math

import numpy as np

from ...optimizers import schedules
from ..base import HYPER
from ..optimizer_steps import skipped, update_count
from ..shared_constants import NADAM_DECAY


def _h(hyper, key):
    return hyper[HYPER[key]]


def decay_weights(w, hyper) -> None:
    wd = _h(hyper, "weight_decay")
    if wd != 0:
        w -= w * wd * _h(hyper, "lr")


class OptimizerOpsReference:
    """Optimizer updates, clipping and the step preparation on NumPy arrays."""

    def optimizer_prepare(self, hyper, table, nadam: bool) -> None:
        """Start of an update: hyper[lr] <- schedule(iterations) when ``table`` is given; for Nadam on an
        update step hyper[u_product] *= beta_1 * (1 - 0.5 * 0.96 ** (updates + 1)); hyper[ema_reseed]
        1 -> -1 (this step restarts the moving average), -1 -> 0."""
        reseed = _h(hyper, "ema_reseed")  # armed by a restored state: this step's EMA restarts (ema_update)
        hyper[HYPER["ema_reseed"]] = -1.0 if reseed > 0 else 0.0
        if table is not None:  # Keras: the schedule counts every step, accumulating or not
            hyper[HYPER["lr"]] = schedules.evaluate(table, float(_h(hyper, "iterations")))
        if nadam and not skipped(hyper):
            f = np.float32
            u_t = f(_h(hyper, "beta_1")) * (f(1) - f(0.5) * f(math.pow(NADAM_DECAY, update_count(hyper) + 1)))
            hyper[HYPER["u_product"]] = f(_h(hyper, "u_product")) * u_t

    def clip_by_value(self, g, clipvalue: float) -> None:
        np.clip(g, -clipvalue, clipvalue, out=g)

    def clip_by_norm(self, g, segments, clipnorm: float) -> None:
        """Each segment g[segments[i]:segments[i+1]] <- seg * clipnorm / max(norm(seg), clipnorm).
        One segment per weight is Keras' clipnorm; one over the whole buffer is global_clipnorm
        (a non-finite norm turns the gradients into NaN, as Keras' clip_by_global_norm)."""
        for a, b in zip(segments[:-1], segments[1:]):
            seg = g[int(a):int(b)]
            norm = np.sqrt((seg.astype(np.float64) ** 2).sum())
            if not norm <= clipnorm:  # NaN goes on to scale by NaN
                with np.errstate(invalid="ignore"):
                    seg *= g.dtype.type(clipnorm / norm + (norm - norm))  # Keras: NaN for an infinite norm

    def rmsprop_update(self, w, g, velocity, momentum, average, hyper) -> None:
        """Keras RMSprop: v <- rho v + (1-rho) g^2; centered: a <- rho a + (1-rho) g, denominator
        v - a^2 + eps, else v + eps; inc = lr g / sqrt(denominator); momentum: m <- mu m + inc, w -= m;
        else w -= inc. ``momentum`` / ``average`` are None when unused."""
        if skipped(hyper):
            return
        decay_weights(w, hyper)
        lr, rho, eps = _h(hyper, "lr"), _h(hyper, "rho"), _h(hyper, "epsilon")
        velocity[...] = rho * velocity + (1 - rho) * (g * g)
        if average is not None:
            average[...] = rho * average + (1 - rho) * g
            denominator = velocity - average * average + eps
        else:
            denominator = velocity + eps
        increment = lr * g / np.sqrt(denominator)
        if momentum is not None:
            momentum[...] = _h(hyper, "momentum") * momentum + increment
            w -= momentum
        else:
            w -= increment

    def optimizer_update(self, kernel, reference, w, g, state, hyper) -> None:
        if skipped(hyper):
            return
        decay_weights(w, hyper)
        reference(w, g, state, hyper)

    def adagrad_update(self, w, g, accumulator, hyper) -> None:
        """Keras Adagrad: acc += g^2; w -= lr g / sqrt(acc + eps)."""
        if skipped(hyper):
            return
        decay_weights(w, hyper)
        accumulator += g * g
        w -= _h(hyper, "lr") * g / np.sqrt(accumulator + _h(hyper, "epsilon"))

    def nadam_update(self, w, g, m, v, hyper) -> None:
        """Keras Nadam with t = iterations + 1 and hyper[u_product] already multiplied by u_t."""
        if skipped(hyper):
            return
        decay_weights(w, hyper)
        f = np.float32
        lr, b1, b2, eps = (f(_h(hyper, k)) for k in ("lr", "beta_1", "beta_2", "epsilon"))
        t = update_count(hyper) + 1
        u_t = b1 * (f(1) - f(0.5) * f(math.pow(NADAM_DECAY, t)))
        u_t1 = b1 * (f(1) - f(0.5) * f(math.pow(NADAM_DECAY, t + 1)))
        u_prod = f(_h(hyper, "u_product"))
        u_prod1 = u_prod * u_t1
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        m_hat = u_t1 * m / (1 - u_prod1) + (1 - u_t) * g / (1 - u_prod)
        v_hat = v / (1 - f(math.pow(b2, t)))
        w -= m_hat * lr / (np.sqrt(v_hat) + eps)

    def accumulate_gradients(self, g, accumulator, hyper) -> None:
        """Keras' gradient accumulation, before clipping: a step that only accumulates adds g to the
        accumulator; an update step makes g <- (g + accumulator) / n and empties the accumulator."""
        if skipped(hyper):
            accumulator += g
        else:
            g += accumulator
            g /= _h(hyper, "accumulation")
            accumulator[...] = 0

    def ema_update(self, w, average, hyper, momentum: float, frequency: int) -> None:
        """Keras' use_ema, after every step's update: mu = momentum (0 on update count 0);
        average <- mu average + (1 - mu) w; w <- average when frequency and (count + 1) % frequency == 0.
        mu is 0 too on the step after a restored state (hyper[ema_reseed] < 0): the average restarts there."""
        count = update_count(hyper)
        mu = np.float32(momentum if count != 0 and _h(hyper, "ema_reseed") >= 0 else 0.0)
        average[...] = mu * average + (np.float32(1) - mu) * w
        if frequency and (count + 1) % frequency == 0:
            w[...] = average
