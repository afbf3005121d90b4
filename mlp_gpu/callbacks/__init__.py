"""``keras.callbacks``: the hooks (base), the progress bar, monitors, checkpoints, logs, learning-rate
callbacks and TensorBoard, each in its own file.

Reading device state every step would force a GPU sync, so the trainer calls ``on_batch_end`` only when
some callback overrides it; ``on_progress`` (running loss and accuracy) comes a few times a second instead.
"""
from .base import Callback, CallbackList, History, LambdaCallback
from .checkpoint import ModelCheckpoint
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .logging import CSVLogger
from .monitor import EarlyStopping, TerminateOnNaN
from .progress import ProgressBar
from .tensorboard import TensorBoard

__all__ = ["Callback", "CallbackList", "History", "LambdaCallback", "ModelCheckpoint", "LearningRateScheduler",
           "ReduceLROnPlateau", "CSVLogger", "EarlyStopping", "TerminateOnNaN", "ProgressBar", "TensorBoard"]
