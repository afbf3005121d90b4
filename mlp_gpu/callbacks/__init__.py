"""``keras.callbacks``: the hooks (callback), History and CallbackList (base), the progress bar, monitors,
checkpoints, backups, logs, learning-rate callbacks, RemoteMonitor and TensorBoard, each in its own file.

Reading device state every step would force a GPU sync, so the trainer calls ``on_batch_end`` only when
some callback overrides it; ``on_progress`` (running loss and accuracy) comes a few times a second instead.
"""
from .backup import BackupAndRestore
from .base import CallbackList, History, LambdaCallback
from .callback import Callback
from .checkpoint import ModelCheckpoint
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .logging import CSVLogger
from .monitor import EarlyStopping, TerminateOnNaN
from .progress import ProgbarLogger, ProgressBar
from .remote import RemoteMonitor
from .tensorboard import TensorBoard

__all__ = ["Callback", "CallbackList", "History", "LambdaCallback", "ModelCheckpoint", "LearningRateScheduler",
           "ReduceLROnPlateau", "CSVLogger", "EarlyStopping", "TerminateOnNaN", "ProgressBar", "TensorBoard",
           "BackupAndRestore", "ProgbarLogger", "RemoteMonitor"]
