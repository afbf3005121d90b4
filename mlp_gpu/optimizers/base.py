"""Optimizers: one update over the model's flat parameter buffer per step.

Hyperparameters live in a small device buffer (see ``backend.base.HYPER``) so a
captured training step reads a new learning rate without being captured again.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import schedules
from .._checks import check_bool, check_int, check_number
from ..naming import snake_case  # noqa: F401 - serialization's import
from ..backend.base import HYPER, HYPER_SIZE


def _positive(value, arg):
    return check_number(value, arg, 0, low_open=True)


def _nonnegative(value, arg):
    return check_number(value, arg, 0)


def _fraction(value, arg):
    return check_number(value, arg, 0, 1, high_open=True)


def _clip_arg(value, arg):
    return None if value is None else _positive(value, arg)


class HyperValue(float):
    """A float read from an optimizer's scalar slot that can also be written back, as Keras'
    ``Variable``: ``float(v)``, ``v.numpy()``, ``v.assign(x)``, arithmetic and formatting."""

    def __new__(cls, value, optimizer, key):
        obj = super().__new__(cls, value)
        obj._optimizer, obj._key = optimizer, key
        return obj

    def numpy(self):
        return np.float32(self)

    def assign(self, value) -> "HyperValue":
        setattr(self._optimizer, {"lr": "learning_rate"}.get(self._key, self._key), value)
        return HyperValue(self._optimizer._get(self._key), self._optimizer, self._key)


# The arguments every optimizer takes after its own, in Keras' order (each file forwards them with base_args).
BASE_ARGS = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum",
             "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps", "name")


def base_args(scope: dict) -> dict:
    """The base arguments from a subclass __init__'s ``locals()``."""
    return {key: scope[key] for key in BASE_ARGS}


OPTIMIZERS: dict[str, type] = {}  # Keras' lower-case class name -> class: every optimizer file registers here


class Optimizer:
    """Base class with Keras' common arguments and formulas.

    learning_rate: a number or a schedule (``optimizers.schedules``), evaluated on the device each step.
    weight_decay: decoupled decay ``w <- w - w * weight_decay * lr`` before each update.
    clipnorm (per weight), global_clipnorm (over all weights), clipvalue: gradient clipping, at most one.
    use_ema, ema_momentum, ema_overwrite_frequency: a moving average of the weights, updated after each
    step (``average <- m average + (1 - m) w``, m = 0 on the first), copied into the weights every
    ``ema_overwrite_frequency`` steps and by ``finalize_variable_values``.
    loss_scale_factor: Keras multiplies the loss by it and divides the gradients by it; the fit loop here
    computes float32 gradients of the unscaled loss, so the two cancel and the update takes them as they are
    (``scale_loss`` gives the scaled loss, as Keras').
    gradient_accumulation_steps: n >= 2 updates every n-th step with the mean of the last n gradients;
    ``iterations`` then counts updates (the schedule still sees every step), as in Keras.
    name: defaults to Keras' snake-case class name ("adam", "adam_w", "rm_sprop").
    """

    slots = 0  # per-parameter state vectors
    nadam = False  # whether each step multiplies Nadam's momentum product on the device

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("mlp_gpu.") and not cls.__name__.startswith("_"):
            OPTIMIZERS[cls.__name__.lower()] = cls

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        cls = type(self).__name__
        if kwargs.pop("decay", None) is not None:
            warnings.warn(f"{cls}: argument `decay` is no longer supported (as in Keras 3) and is ignored",
                          stacklevel=3)
        if kwargs:
            raise ValueError(f"{cls}: argument(s) not recognized: {kwargs}")
        self._host_hyper = np.zeros(HYPER_SIZE, np.float32)
        self.schedule = learning_rate if isinstance(learning_rate, schedules.LearningRateSchedule) else None
        if self.schedule is None:
            if callable(learning_rate):
                raise TypeError(f"{cls}(learning_rate): a callable is not supported (the rate is evaluated on the "
                                "device each step); give a number or an optimizers.schedules.LearningRateSchedule")
            self._host_hyper[HYPER["lr"]] = _positive(learning_rate, f"{cls}(learning_rate)")
        else:
            try:  # a schedule the device cannot evaluate fails here, not in fit
                self.schedule.encode()
            except NotImplementedError:
                raise TypeError(f"{cls}(learning_rate): {type(learning_rate).__name__} has no encode(): the rate is "
                                "evaluated on the device from a schedule's table, which the built-in schedules "
                                "write") from None
            self._host_hyper[HYPER["lr"]] = self.schedule(0)
        self.weight_decay = None if weight_decay is None else _nonnegative(weight_decay, f"{cls}(weight_decay)")
        self._host_hyper[HYPER["weight_decay"]] = self.weight_decay or 0.0
        self._host_hyper[HYPER["u_product"]] = 1.0
        self.clipnorm = _clip_arg(clipnorm, f"{cls}(clipnorm)")
        self.clipvalue = _clip_arg(clipvalue, f"{cls}(clipvalue)")
        self.global_clipnorm = _clip_arg(global_clipnorm, f"{cls}(global_clipnorm)")
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{cls}: only one of clipnorm, clipvalue and global_clipnorm can be set; got "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.use_ema = check_bool(use_ema, f"{cls}(use_ema)")
        self.ema_momentum, self.ema_overwrite_frequency = ema_momentum, ema_overwrite_frequency
        if self.use_ema:  # Keras checks them only when they are used
            self.ema_momentum = check_number(ema_momentum, f"{cls}(ema_momentum)", 0, 1)
            if ema_overwrite_frequency is not None:
                self.ema_overwrite_frequency = check_int(ema_overwrite_frequency,
                                                         f"{cls}(ema_overwrite_frequency)", 1)
        self.loss_scale_factor = None if loss_scale_factor is None else \
            _positive(loss_scale_factor, f"{cls}(loss_scale_factor)")
        self.gradient_accumulation_steps = gradient_accumulation_steps  # Keras: a false value means none
        if gradient_accumulation_steps:
            self.gradient_accumulation_steps = check_int(gradient_accumulation_steps,
                                                         f"{cls}(gradient_accumulation_steps)", 2)
        self._host_hyper[HYPER["accumulation"]] = self.gradient_accumulation_steps or 0
        self.name = snake_case(cls) if name is None else name
        if not isinstance(self.name, str):
            raise ValueError(f"{cls}(name): expected a string, got {name!r}")
        self.backend = None
        self.hyper = None   # device copy of _host_hyper once built
        self.state = None   # (slots, n_params) device buffer
        self._average = self._accumulator = None  # EMA of the weights, accumulated gradients: (n_params,)

    def build(self, backend, size: int, dtype=np.float32, segments=None) -> None:
        """Fresh state for ``size`` parameters on ``backend``; ``load_state`` restores a saved one.
        ``segments``: where each weight starts and ends in the flat buffer (for clipnorm)."""
        self.backend = backend
        self._host_hyper[HYPER["iterations"]] = 0
        self._host_hyper[HYPER["u_product"]] = 1.0
        self.hyper = backend.asarray(self._host_hyper.copy())
        self.state = backend.zeros((self.slots, size), dtype)
        self._init_state()
        self._average = backend.zeros(size, dtype) if self.use_ema else None
        self._accumulator = backend.zeros(size, dtype) if self.gradient_accumulation_steps else None
        bounds = [0, size] if self.global_clipnorm is not None or segments is None else list(segments)
        self._segments = backend.asarray(np.asarray(bounds, np.int64))
        self._table = None if self.schedule is None else backend.asarray(self.schedule.encode())

    def _init_state(self) -> None:
        """Initial values of the state slots (zeros unless a subclass says otherwise)."""

    def begin_step(self) -> None:
        """Ready the scalars this step's update reads: the schedule's rate, Nadam's momentum product,
        whether the moving average restarts."""
        if self._table is not None or self.nadam or self.use_ema:
            self.backend.optimizer_prepare(self.hyper, self._table, self.nadam)

    def update(self, params, grads) -> None:
        """One step over the flat buffers, in Keras' order: schedule, gradient accumulation, clipping,
        the update (weight decay first), the weights' moving average."""
        be = self.backend
        self.begin_step()
        if self._accumulator is not None:
            be.accumulate_gradients(grads, self._accumulator, self.hyper)
        if self.clipvalue is not None:
            be.clip_by_value(grads, self.clipvalue)
        elif self.clipnorm is not None or self.global_clipnorm is not None:
            be.clip_by_norm(grads, self._segments, self.clipnorm or self.global_clipnorm)
        self.apply(params, grads)
        if self._average is not None:
            be.ema_update(params, self._average, self.hyper, self.ema_momentum, self.ema_overwrite_frequency or 0)

    def apply(self, params, grads) -> None:
        raise NotImplementedError

    def scale_loss(self, loss):
        """Keras' loss scaling: ``loss * loss_scale_factor`` (the loss itself without one)."""
        return loss if self.loss_scale_factor is None else loss * self.loss_scale_factor

    def finalize_variable_values(self, var_list) -> None:
        """End of training, as Keras' fit does: with use_ema, the weights (``var_list``: the model's flat
        parameter buffer) become their moving average."""
        if self._average is None:
            return
        if tuple(var_list.shape) != tuple(self._average.shape):
            raise ValueError(f"finalize_variable_values: expected the model's flat parameter buffer of shape "
                             f"{tuple(self._average.shape)}, got {tuple(var_list.shape)}")
        var_list[...] = self._average

    def load_state(self, state, iterations: int = 0) -> None:
        """Restore the per-parameter state and step count (``iterations``, Keras' count of updates) of a
        built optimizer, as saved with the model; accumulation restarts from an empty accumulator, and the
        moving average (use_ema; not in ``state``) from the weights of the next step."""
        if self.state is None:
            raise RuntimeError(f"{type(self).__name__}.load_state: not built yet; compile the model first")
        state = np.asarray(state)
        if state.shape != tuple(self.state.shape):
            raise ValueError(f"state: expected shape {tuple(self.state.shape)}, got {state.shape}")
        self.state[...] = self.backend.asarray(state, self.state.dtype)
        self._set("iterations", int(iterations) * (self.gradient_accumulation_steps or 1))
        if self._accumulator is not None:
            self._accumulator[...] = 0
        if self.use_ema:
            self._set("ema_reseed", 1.0)

    def _set(self, key, value):
        self._host_hyper[HYPER[key]] = value
        if self.hyper is not None:
            self.hyper[HYPER[key]] = value

    def _get(self, key):
        if self.hyper is not None:
            return float(self.backend.to_host(self.hyper)[HYPER[key]])
        return float(self._host_hyper[HYPER[key]])

    @property
    def learning_rate(self) -> "HyperValue":
        """The learning rate on the device, used as Keras code uses its variable: ``float(lr)``,
        ``lr.numpy()``, ``lr.assign(0.001)``; assigning the property (``opt.learning_rate = 0.001``)
        works too. Either writes the device slot that the next step reads. With a schedule: the
        schedule's rate for the next step (read-only)."""
        if self.schedule is not None:
            return HyperValue(float(np.float32(self.schedule(self._get("iterations")))), self, "lr")
        return HyperValue(self._get("lr"), self, "lr")

    @learning_rate.setter
    def learning_rate(self, value):
        if self.schedule is not None:
            raise TypeError(f"learning_rate: this optimizer follows a {type(self.schedule).__name__} schedule, "
                            "so its learning rate cannot be set")
        self._set("lr", _positive(value, "learning_rate"))

    @property
    def iterations(self) -> int:
        """Keras' ``optimizer.iterations``: the steps taken, or with gradient accumulation the updates."""
        return int(self._get("iterations")) // (self.gradient_accumulation_steps or 1)

    def get_config(self) -> dict:
        """Keras' config: its keys, in its order."""
        lr = float(self.learning_rate) if self.schedule is None else schedules.serialize(self.schedule)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
                "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The optimizer ``get_config`` describes (a serialized schedule as learning_rate included)."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)
