"""``ModelCheckpoint``: save the model (or its weights) each epoch or every N batches, only when the
monitored value improved if asked, never a file holding non-finite weights."""
from __future__ import annotations

import logging

import os
import string
from pathlib import Path


from .._checks import check_int, check_number
from .base import Callback
from .monitor import _check_monitor, _improves, _monitor_mode

log = logging.getLogger("mlp_gpu")


class ModelCheckpoint(Callback):
    """Save the model (or only its weights) after each epoch or every ``save_freq`` batches, atomically.

    Keras 3's arguments. ``filepath`` may hold format fields: ``"ckpt-{epoch:02d}-{val_loss:.3f}.h5"``
    (and ``{batch}`` with an integer ``save_freq``); its folder is created when first needed. With
    ``save_best_only`` a file is written only when ``monitor`` beats the best so far (at first
    ``initial_value_threshold``, if given). A full save records the completed epochs and the seed, so
    ``--resume`` continues exactly. An integer ``save_freq`` reads the device every batch (slower).
    """

    chief_only = True

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else filepath
        if not isinstance(self.filepath, str):
            raise TypeError(f"ModelCheckpoint(filepath): expected a str or path, got {type(filepath).__name__}")
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(self.filepath) if name is not None]
        except ValueError as exc:
            raise ValueError(f"ModelCheckpoint(filepath={self.filepath!r}): not a valid template ({exc})") from None
        if any(not name or name[0].isdigit() for name in fields):
            raise ValueError(f"ModelCheckpoint(filepath={self.filepath!r}): fields need names, such as {{epoch:02d}}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"ModelCheckpoint(save_freq): expected 'epoch' or an int >= 1 (batches), "
                             f"got {save_freq!r}")
        self.monitor, self.save_best_only, self.save_weights_only = monitor, save_best_only, save_weights_only
        self.verbose = check_int(verbose, "ModelCheckpoint(verbose)", 0)
        self.sign = _monitor_mode(monitor, mode, "ModelCheckpoint")
        self.save_freq = save_freq
        self.best = (None if initial_value_threshold is None
                     else check_number(initial_value_threshold, "ModelCheckpoint(initial_value_threshold)"))
        self.saved: list[str] = []
        self._batches_since_save, self._epoch = 0, 0

    @property
    def wants_batch_end(self) -> bool:
        return self.save_freq != "epoch"

    def on_train_begin(self, logs=None):
        """Fail before training, not after the first epoch, on a template or monitor fit will never fill."""
        logged = getattr(self, "params", {}).get("metrics")
        if logged is None:
            return
        if self.save_best_only:
            _check_monitor(self, "ModelCheckpoint")
        try:
            self.filepath.format(epoch=1, batch=1, **{name: 0.5 for name in logged})
        except KeyError as exc:
            raise ValueError(f"ModelCheckpoint(filepath={self.filepath!r}): field {{{exc.args[0]}}} is never "
                             f"logged by this fit; it logs epoch and {', '.join(logged)}") from None
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"ModelCheckpoint(filepath={self.filepath!r}): {exc}") from None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _save(self, epoch, batch, logs):
        if not self.model.weights_finite():  # a diverged run (fit goes on, as Keras) never reaches a file
            log.warning("ModelCheckpoint: the weights after epoch %d are not finite; not saved, files on disk "
                        "keep the last finite weights", epoch + 1)
            return
        fields = dict(logs, epoch=epoch + 1) if batch is None else dict(logs, epoch=epoch + 1, batch=batch + 1)
        path = self.filepath.format(**fields)
        if self.save_best_only and not self._improved(epoch, logs, batch is None):
            return
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)  # records model.epochs_done, which fit sets before the epoch-end hooks
        self.saved.append(path)

    def _improved(self, epoch, logs, epoch_end) -> bool:
        if self.monitor not in logs:
            if epoch_end:
                raise KeyError(f"ModelCheckpoint(monitor={self.monitor!r}): not among the logged "
                               f"metrics {sorted(logs)}")
            return True  # batch logs hold no validation metrics: Keras saves then too
        current = float(logs[self.monitor])
        if not _improves(self.sign, current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
            return False
        if self.verbose > 0:
            best = "None" if self.best is None else f"{self.best:.5f}"
            print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}")
        self.best = current
        return True
