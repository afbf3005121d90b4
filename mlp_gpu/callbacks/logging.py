"""``CSVLogger``: each epoch's logs as a row of a CSV file, Keras' columns and separator."""
from __future__ import annotations

import csv
from pathlib import Path
from .base import Callback


class CSVLogger(Callback):
    """Append one row per epoch (epoch, then each logged metric) to a CSV file, flushed each epoch."""

    chief_only = True

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.separator, self.append = Path(filename), separator, append
        if not self.filename.parent.is_dir():
            raise FileNotFoundError(f"CSVLogger(filename): folder {str(self.filename.parent)!r} does not exist")
        self.keys = None

    def on_train_begin(self, logs=None):
        exists = self.append and self.filename.exists() and self.filename.stat().st_size > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = csv.writer(self.file, delimiter=self.separator)
        self.keys = None
        self.header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if not self.header_written:
                self.writer.writerow(["epoch"] + self.keys)
        self.writer.writerow([epoch] + [logs.get(k, "") for k in self.keys])
        self.file.flush()

    def on_train_end(self, logs=None):
        self.file.close()
