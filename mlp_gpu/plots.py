"""Pictures, headless (matplotlib's Agg): training curves and a confusion matrix."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'mlp_gpu[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history, path) -> Path:
    """Loss and accuracy per epoch, training against validation, side by side."""
    plt = _pyplot()
    h = history.history
    if not h:
        raise ValueError("history: no epochs recorded, nothing to plot")
    epochs = np.asarray(history.epoch) + 1
    metrics = [m for m in ("loss", "accuracy") if m in h]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.plot(epochs, h[metric], "o-", ms=3, label="training")
        if "val_" + metric in h:
            ax.plot(epochs, h["val_" + metric], "s-", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("training curves")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_matrix(y_true, y_pred, classes: int) -> np.ndarray:
    """counts[i, j]: rows of true class i predicted as j."""
    counts = np.zeros((classes, classes), np.int64)
    np.add.at(counts, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return counts


def plot_confusion(y_true, y_pred, class_names, path) -> Path:
    """A confusion matrix with counts in each cell and the accuracy in the title."""
    plt = _pyplot()
    k = len(class_names)
    counts = confusion_matrix(y_true, y_pred, k)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(counts, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = counts.max() or 1
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if counts[i, j] > top / 2 else "black")
    ax.set_title(f"confusion matrix: accuracy {np.trace(counts) / max(counts.sum(), 1):.4f}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
