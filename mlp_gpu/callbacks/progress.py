"""The progress bar (Keras' verbose=1 / 2): refreshed from ``on_progress``, a few times a second, so the
host reads the device's running sums only then."""
from __future__ import annotations

import sys

import numpy as np

from .callback import Callback


def _fmt(logs):
    """``name: value`` pairs; a metric of several values (Precision at several thresholds) shows their mean,
    as Keras' Progbar does."""
    return " - ".join(f"{k}: {float(np.mean(v)):.4f}" for k, v in logs.items())


class ProgressBar(Callback):
    """verbose=1: a tqdm bar per epoch with ETA, samples/s and running metrics; verbose=2: a line per epoch."""

    chief_only = True

    def __init__(self, verbose=1, file=None):
        super().__init__()
        self.verbose = verbose
        self.file = file or sys.stdout
        self.wants_progress = verbose == 1
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose == 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.params["samples"], unit="sample", unit_scale=True, file=self.file,
                            desc=f"Epoch {epoch + 1}/{self.params['epochs']}", leave=True, dynamic_ncols=True)

    def on_progress(self, step, logs):
        if self.bar is not None:
            self.bar.n = min(step * self.params["batch_size"], self.params["samples"])
            self.bar.set_postfix_str(_fmt(logs), refresh=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.n = self.params["samples"]
            self.bar.set_postfix_str(_fmt(logs or {}), refresh=False)  # close() draws the final state once
            self.bar.close()
            self.bar = None
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.params['epochs']} - {_fmt(logs or {})}", file=self.file, flush=True)


class ProgbarLogger(ProgressBar):
    """Keras' ``ProgbarLogger()``: the progress bar as a callback object, its verbosity taken from fit's
    ``verbose`` (``params["verbose"]``, "auto" as 1) when fit hands over its params. fit adds none of its
    own when one is among the callbacks."""

    def __init__(self):
        super().__init__(verbose=1)

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.wants_progress = self.verbose == 1
