"""One rank of the distributed tests (tests/distributed/test_distributed.py); run alone or under mpiexec.

Trains a small net on a fixed synthetic set and writes, outside the training folder, result-rank<R>.npz
with the weights after every epoch. Training runs in <out>/rank<R>/ with a ModelCheckpoint and a
CSVLogger there, so the tests can tell which rank wrote files. Ranks above 0 build their model from
another seed: only the broadcast of rank 0's weights makes the ranks start alike.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

import mlp_gpu
from mlp_gpu import SGD, Dense, Input, Sequential, callbacks, distributed


def data(rows, features=20, classes=3):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = (x[:, :classes].argmax(axis=1)).astype(np.int32)
    return x, y


def graph_model(lr, seed):
    """Two inputs (the first 8 features, the other 12), two outputs: the classes and a regression."""
    wide, deep = Input((8,), name="wide"), Input((12,), name="deep")
    hidden = Dense(16, "relu", name="hidden")(deep)
    main = Dense(3, "softmax", name="main")(mlp_gpu.layers.concatenate([wide, hidden]))
    aux = Dense(1, name="aux")(hidden)
    model = mlp_gpu.Model([wide, deep], [main, aux], backend="numpy")
    model.compile(loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
                  optimizer=SGD(lr, momentum=0.9), metrics=[["accuracy"], None], seed=seed)
    return model


def graph_data(x, y):
    return (x[:, :8], x[:, 8:]), (y, x[:, :1])


class Weights(mlp_gpu.Callback):
    def __init__(self):
        self.after = {}

    def on_epoch_end(self, epoch, logs=None):
        self.after[epoch + 1] = self.model.get_weights()


class FailOn(mlp_gpu.Callback):
    """Raise in the middle of epoch 1 (0-based) on one rank."""

    def __init__(self, rank):
        self.rank = rank

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 5 and distributed.rank() == self.rank:
            raise RuntimeError(f"boom from rank {self.rank} at batch {batch}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--per-rank", action="store_true", help="per-rank batches, no warm-up")
    ap.add_argument("--resume", default=None)
    ap.add_argument("--fail-rank", type=int, default=None)
    ap.add_argument("--graph", action="store_true", help="a functional model with two inputs and two outputs")
    args = ap.parse_args()
    comm = distributed.init()
    rank = comm.rank
    out = Path(args.out)
    folder = out / f"rank{rank}"
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    x, y = data(args.rows)
    x_val, y_val = data(101)
    if args.graph:
        model = graph_model(args.lr, 0 if rank == 0 else 99 + rank)
        (x, y), (x_val, y_val) = graph_data(x, y), graph_data(x_val, y_val)
        initial_epoch, seed = 0, 5
    elif args.resume:
        model = mlp_gpu.load_model(args.resume)
        initial_epoch, seed = model.epochs_done, model.fit_seed
    else:
        model = Sequential([Input((20,)), Dense(16, "relu"), Dense(3, "softmax")], backend="numpy")
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=SGD(args.lr, momentum=0.9), metrics=["accuracy"], seed=0 if rank == 0 else 99 + rank)
        initial_epoch, seed = 0, 5
    weights = Weights()
    cbs = [weights, callbacks.ModelCheckpoint("ckpt-{epoch}.h5"), callbacks.CSVLogger("log.csv")]
    if args.fail_rank is not None:
        cbs.append(FailOn(args.fail_rank))
    strategy = distributed.DataParallel(batch="per_rank", warmup_epochs=0) if args.per_rank else None
    history = model.fit(x, y, batch_size=args.batch, epochs=args.epochs, initial_epoch=initial_epoch, seed=seed,
                        validation_data=(x_val, y_val), verbose=0, callbacks=cbs, distribute=strategy)
    arrays = {f"e{e}_{i}": w for e, ws in weights.after.items() for i, w in enumerate(ws)}
    arrays.update({k: np.array(v) for k, v in history.history.items()})
    np.savez(out / f"result-rank{rank}.npz", size=comm.size, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
