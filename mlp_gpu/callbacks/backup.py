"""``BackupAndRestore``: a fit that was killed goes on where its last backup left it, exactly.

Each backup is one full model file (io/hdf5.py): weights, optimizer state and step count, the epochs done,
the shuffle seed and the dropout draws, written atomically, so a kill at any moment leaves the previous
backup or the new one, never half of either. Keras keeps the epoch in a second file
(training_metadata.json) beside ``latest.weights.h5``; here one file holds it all, so the two can never
disagree. Restoring puts all of it back into the model fit was given and tells fit, through Keras'
``model._initial_epoch``, to start after the last backed-up epoch: the resumed run's weights then equal an
uninterrupted run's bit for bit (epoch k's order depends only on the seed and k).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..distributed import is_chief
from ..io import hdf5
from ..io.files import ModelFileError
from .callback import Callback

log = logging.getLogger("mlp_gpu")

BACKUP = "latest.h5"
PREVIOUS = BACKUP + ".bkp"  # double_checkpoint: the backup before the last


def _check_bool(value, arg):
    if not isinstance(value, bool):
        raise TypeError(f"BackupAndRestore({arg}): expected True or False, got {value!r}")
    return value


class BackupAndRestore(Callback):
    """Back the training state up at each epoch end (or every ``save_freq`` batches) into ``backup_dir``;
    the next ``fit`` with this callback restores it and continues from there.

    ``double_checkpoint``: keep the backup before the last too, and restore it when the last cannot be
    read. ``delete_checkpoint``: remove the backup when fit ends normally (all its epochs, or stopped by a
    callback such as EarlyStopping). A fit cut short (killed, an exception, Ctrl-C) keeps it: that is what
    it is for. Only the files this callback writes are removed, then the folder if that leaves it empty
    (Keras removes the whole folder). With an integer ``save_freq`` a mid-epoch backup holds that batch's
    weights but resumes at the start of its epoch, as in Keras: exact resumption needs ``"epoch"``.
    In a distributed fit every rank restores from ``backup_dir`` (a folder all ranks see); rank 0 writes.
    Dropout layers get back the Philox keys of the backup; a step the backend captured before
    ``on_train_begin`` (CUDA graphs) keeps the key it was captured with, so for an exact resume on a GPU seed
    the Dropout layers (``seed=``) or the script (``utils.set_random_seed``), which gives the same keys anyway.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError(f"BackupAndRestore(backup_dir): expected a folder path, got {backup_dir!r}")
        if not isinstance(backup_dir, (str, os.PathLike)):
            raise TypeError(f"BackupAndRestore(backup_dir): expected a str or path, got {type(backup_dir).__name__}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"BackupAndRestore(save_freq): expected 'epoch' or an int >= 1 (batches), got "
                             f"{save_freq!r} (Keras' False, for preemption checkpoints, has no use here)")
        self.backup_dir = Path(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = _check_bool(double_checkpoint, "double_checkpoint")
        self.delete_checkpoint = _check_bool(delete_checkpoint, "delete_checkpoint")
        self._path, self._previous = self.backup_dir / BACKUP, self.backup_dir / PREVIOUS
        self._batches_since_save = 0
        self._current_epoch = 0
        self.restored_epoch = None  # the epochs done that the last on_train_begin restored, or None

    @property
    def wants_batch_end(self) -> bool:
        return self.save_freq != "epoch"

    # ---- restore ----------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.restored_epoch = None
        self._batches_since_save = 0
        if self.backup_dir.exists() and not self.backup_dir.is_dir():
            raise NotADirectoryError(f"BackupAndRestore(backup_dir): {str(self.backup_dir)!r} is a file, not a folder")
        # the last backup, else the one before (a kill between moving it aside and writing the next one)
        found = [path for path in (self._path, self._previous) if path.exists()]
        for k, path in enumerate(found):
            try:
                self._restore(path)
                return
            except (ModelFileError, OSError) as exc:
                if k + 1 == len(found):
                    raise
                log.warning("BackupAndRestore: %s cannot be read (%s); restoring the backup before it", path, exc)

    def _restore(self, path):
        model = self.model
        if model.optimizer is None:
            raise ValueError("BackupAndRestore: the model is not compiled; compile it as before the interruption")
        saved = hdf5.load_model(path, lambda config, backend: type(model).from_config(config, backend="numpy"))
        if saved.optimizer is None or type(saved.optimizer) is not type(model.optimizer):
            raise ValueError(f"BackupAndRestore: {str(path)!r} holds a model compiled with "
                             f"{type(saved.optimizer).__name__}, this one has {type(model.optimizer).__name__}; "
                             "compile it as before the interruption, or empty the backup folder")
        model.set_weights(saved.get_weights())  # checks every shape before anything changes
        opt, old = model.optimizer, saved.optimizer
        opt.load_state(old.backend.to_host(old.state), iterations=old.iterations)
        if opt.schedule is None:
            opt.learning_rate = float(old.learning_rate)  # as a callback (ReduceLROnPlateau) left it
        model.rng_counter[...] = int(old.backend.to_host(saved.rng_counter)[0])
        for layer, was in zip(model.layers, saved.layers):  # Dropout's Philox keys, drawn at build unless seeded
            if getattr(layer, "uses_rng", False) and type(was) is type(layer):
                layer.key = was.key
        model.fit_seed, model.epochs_done = saved.fit_seed, saved.epochs_done
        model._initial_epoch = saved.epochs_done  # Keras' attribute: fit starts at this epoch
        self.restored_epoch = self._current_epoch = saved.epochs_done
        log.info("BackupAndRestore: restored %s, resuming after epoch %d", path, saved.epochs_done)

    # ---- back up ----------------------------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._batches_since_save = 0
        if self.save_freq == "epoch":
            self._save()

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save()

    def _save(self):
        if not is_chief():
            return
        if not self.model.weights_finite():  # a diverged state is no state to come back to
            log.warning("BackupAndRestore: the weights are not finite; the last backup is kept")
            return
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        if self.double_checkpoint and self._path.exists():
            os.replace(self._path, self._previous)
        hdf5.save_model(self.model, self._path)  # records model.epochs_done, which fit sets before this hook

    def on_train_end(self, logs=None):
        # ended normally: all epochs, or stopped by a callback with finite weights (a diverged run keeps it)
        finished = self._current_epoch >= self.params.get("epochs", 0) or self.model.stop_training
        if not (self.delete_checkpoint and finished and self.model.weights_finite() and is_chief()):
            return
        for path in (self._path, self._previous):
            path.unlink(missing_ok=True)
        if self.backup_dir.is_dir() and not any(self.backup_dir.iterdir()):
            self.backup_dir.rmdir()
