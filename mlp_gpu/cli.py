"""The ``mlp-gpu`` command: train, evaluate, predict, export, info."""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .backend.shared_constants import ACTIVATIONS


def _hdf5_data(args) -> bool:
    return args.data is not None and Path(args.data).is_file()


def _load_data(args, need_test=True):
    """((x, y), (x_test, y_test)): IDX arrays from a folder, or h5py datasets (read as they are used) from
    an HDF5 file in the layout ``mlp-gpu convert`` writes; the test pair is None if the file has none."""
    from . import data

    if _hdf5_data(args):
        from .data.hdf5 import open_hdf5

        train = open_hdf5(args.data)
        test = open_hdf5(args.data, "test") if need_test or "test" in train[0].file else None
        return train, test
    loader = data.load_fashion_mnist if args.dataset == "fashion-mnist" else data.load_mnist
    return loader(args.data)  # uint8 pixels; fit scales them on the device


def _classes(y) -> int:
    attr = getattr(y, "attrs", {}).get("classes") if hasattr(y, "attrs") else None
    return int(attr) if attr is not None else int(np.max(y[:])) + 1


def _check_output_path(path: Path):
    from .io.files import check_save_target

    try:
        check_save_target(path)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise SystemExit(f"mlp-gpu: --output {exc}") from None


def _new_model(args, classes, input_shape, backend):
    from . import SGD, Adam, Dense, Flatten, Input, Sequential

    opt = SGD(args.lr, momentum=args.momentum) if args.optimizer == "sgd" else Adam(args.lr)
    layers = [Input(input_shape), Flatten()] + [Dense(u, args.activation) for u in args.hidden] \
        + [Dense(classes, "softmax")]
    model = Sequential(layers, backend=backend)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=opt, metrics=["accuracy"], seed=args.seed)
    return model


def cmd_train(args):
    from . import callbacks, data, distributed, get_backend, load_model

    out = Path(args.output)
    _check_output_path(out)  # before an hour of training, not after
    chief = distributed.init().is_chief  # under mpiexec: the engine, and each rank's GPU, before any model
    backend = get_backend(args.backend, graph=not args.no_graph, tf32=args.tf32)
    (x_full, y_full), test = _load_data(args, need_test=False)
    if _hdf5_data(args):  # row ranges of the file's datasets: nothing is read before fit streams it
        from .data.sources import split_rows

        (x, y), (x_val, y_val) = split_rows(x_full, y_full, args.validation_size)
    else:
        (x, y), (x_val, y_val) = data.split_validation(x_full, y_full, args.validation_size)
    if args.resume:  # weights, optimizer state, completed epochs and the shuffle seed
        model = load_model(args.resume, backend=backend)
        if model.optimizer is None:
            raise ValueError(f"--resume {args.resume!r}: the file holds weights only, not a training state")
        initial_epoch, seed = model.epochs_done, model.fit_seed if model.fit_seed is not None else args.seed
        if chief:
            print(f"resuming {args.resume} after epoch {initial_epoch}")
    else:
        model = _new_model(args, _classes(y_full), tuple(x.shape[1:]), backend)
        initial_epoch, seed = 0, args.seed
    if args.verbose and chief:
        model.summary()
    cbs = [callbacks.ModelCheckpoint(args.checkpoint)] if args.checkpoint else []
    if args.tensorboard:
        cbs.append(callbacks.TensorBoard(args.tensorboard))
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_data=(x_val, y_val),
                        on_nan="raise", seed=seed, verbose=args.verbose, initial_epoch=initial_epoch, callbacks=cbs)
    seconds = time.perf_counter() - start
    if not chief:  # rank 0 alone saves, evaluates and reports
        return
    model.save(out)
    test_loss, test_acc = model.evaluate(*test) if test is not None else (None, None)
    result = {"backend": model.backend.name, "epochs": model.epochs_done, "train_seconds": round(seconds, 2),
              "val_accuracy": history.history.get("val_accuracy", [None])[-1],
              "test_loss": test_loss, "test_accuracy": test_acc, "model": str(out)}
    if args.plot and history.epoch:
        result["plot"] = str(history.plot(out.with_name(out.stem + "-history.png")))
    val = "n/a" if result["val_accuracy"] is None else f"{result['val_accuracy']:.4f}"
    print(json.dumps(result) if args.json else
          f"trained to epoch {result['epochs']} on {result['backend']} in {seconds:.1f} s; "
          f"val accuracy {val}; test accuracy {'n/a' if test_acc is None else f'{test_acc:.4f}'}; saved {out}"
          + (f" and {result['plot']}" if "plot" in result else ""))


def cmd_evaluate(args):
    from . import load_model

    model = load_model(args.model, backend=args.backend)
    if model.loss is None:
        raise ValueError(f"{args.model!r} holds weights only; evaluate needs a model saved with its loss")
    _, (x_test, y_test) = _load_data(args)
    loss, acc = model.evaluate(x_test, y_test)
    result = {"test_loss": loss, "test_accuracy": acc}
    if args.plot:
        from .data.idx import FASHION_CLASSES
        from .plots import plot_confusion

        names = FASHION_CLASSES if args.dataset == "fashion-mnist" else [str(k) for k in range(10)]
        pred = model.predict(x_test).argmax(axis=1)
        result["plot"] = str(plot_confusion(y_test, pred, names, args.plot))
    print(json.dumps(result) if args.json
          else f"test loss {loss:.4f}; test accuracy {acc:.4f} ({len(y_test)} images)"
          + (f"; confusion matrix in {result['plot']}" if "plot" in result else ""))


def cmd_predict(args):
    from . import data, load_model

    model = load_model(args.model, backend=args.backend)
    if args.input:
        x, y = np.load(args.input, allow_pickle=False), None
    else:
        _, (x, y) = _load_data(args)
        x, y = x[args.start:args.start + args.count], y[args.start:args.start + args.count]
    probs = model.predict(x)
    names = data.FASHION_CLASSES if args.dataset == "fashion-mnist" and probs.shape[1] == 10 else None
    for i, p in enumerate(probs):
        k = int(p.argmax())
        label = f"{k} {names[k]}" if names else str(k)
        truth = "" if y is None else f"  (true {int(y[i])}{' ' + names[int(y[i])] if names else ''})"
        print(f"{args.start + i if y is not None else i}: {label}  p={p[k]:.3f}{truth}")


def cmd_export(args):
    from . import load_model

    model = load_model(args.model, backend="numpy")  # export reads the weights on the host
    if str(args.output).endswith(".keras"):
        model.save(args.output)
        print(f"exported {args.model} to {args.output} (Keras 3 .keras)")
        return
    model.export(args.output, format="onnx", verbose=False, input_dtype=args.input_dtype,
                 opset_version=args.opset)
    print(f"exported {args.model} to {args.output} (ONNX opset {args.opset or 'default'}, "
          f"{args.input_dtype} input)")


def cmd_convert(args):
    from .data.idx import find_dataset
    from .data.hdf5 import write_hdf5

    (x, y), test = _load_data(args)
    source = find_dataset(args.dataset, args.data)["train_images"].parent
    write_hdf5(args.output, x, y, test=test, attrs={"dataset": args.dataset, "classes": int(y.max()) + 1,
                                                     "source": str(source)})
    print(f"wrote {args.output}: {len(x):,} training rows {x.dtype}{tuple(x.shape[1:])} in x, y and "
          f"{len(test[0]):,} test rows in test/x, test/y")


def cmd_info(args):
    import h5py

    from . import __version__, available_backends, get_backend

    print(f"mlp_gpu {__version__}; python {platform.python_version()}; numpy {np.__version__}; "
          f"h5py {h5py.__version__}")
    for name, reason in available_backends().items():
        print(f"backend {name}: {'available' if reason is None else 'unavailable: ' + reason}")
    backend = get_backend(args.backend)
    print("selected: " + ", ".join(f"{k}={v}" for k, v in backend.describe().items()))


def cmd_bench(args):
    from .bench import run_suite

    result = run_suite(args.matrix, repeats=args.repeats, out=args.out, plot=not args.no_plot,
                       parallel=args.parallel)
    if args.json:
        print(json.dumps(result["ratios"]))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlp-gpu", description="Train and use MLPs on CUDA (CuPy) or NumPy.")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--backend", default="auto", choices=["auto", "numpy", "cupy"])
        sp.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
        sp.add_argument("--data", default=None, help="folder with the four IDX files (default: search), or an "
                        "HDF5 file with x, y (and test/x, test/y) as `mlp-gpu convert` writes")
        sp.add_argument("--json", action="store_true", help="print the result as JSON")

    t = sub.add_parser("train", help="train an MLP (defaults: the reference Fashion-MNIST workload)")
    common(t)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--hidden", type=int, nargs="+", default=[300, 100], help="hidden layer widths")
    t.add_argument("--activation", default="relu", choices=ACTIVATIONS, help="the hidden layers' activation")
    t.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    t.add_argument("--lr", type=float, default=0.01, help="learning rate")
    t.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    t.add_argument("--validation-size", type=int, default=5000)
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    t.add_argument("--output", default="model.h5", help="where to save the trained model")
    t.add_argument("--plot", action="store_true", help="save training curves as <output>-history.png")
    t.add_argument("--checkpoint", default=None,
                   help="save a resumable checkpoint after every epoch (may hold {epoch:02d})")
    t.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="write TensorBoard logs (loss, accuracy, learning rate per epoch) under DIR")
    t.add_argument("--resume", default=None, help="continue from a checkpoint or saved model")
    t.add_argument("--no-graph", action="store_true", help="cupy: launch each kernel instead of replaying a graph")
    t.add_argument("--tf32", action="store_true", help="cupy: let cuBLAS use TF32 tensor cores (off by default)")
    t.add_argument("--workers", type=_positive_int, default=1,
                   help="train data-parallel on N processes of this machine, started through mpiexec "
                        "(the global batch stays --batch-size); or start this command with mpiexec -n N")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="loss and accuracy of a saved model on the test set")
    e.add_argument("model")
    common(e)
    e.add_argument("--plot", default=None, metavar="PNG", help="write a confusion matrix picture")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="predicted classes of test images (or of a .npy array)")
    pr.add_argument("model")
    common(pr)
    pr.add_argument("--input", default=None, help=".npy array of images (default: the test set)")
    pr.add_argument("--start", type=int, default=0)
    pr.add_argument("--count", type=int, default=10)
    pr.set_defaults(func=cmd_predict)

    b = sub.add_parser("bench", help="time workloads x backends x peers; write JSON, Markdown and a PNG")
    b.add_argument("--matrix", default="auto", choices=["auto", "cpu", "gpu", "smoke", "toolbox", "dist", "rows"],
                   help="auto: the gpu matrix where CuPy has a device, else the cpu one; dist: 1 against 2 MPI "
                        "ranks on the CPU; rows: resident against streamed training from synthetic data on disk "
                        "at 55 thousand, 1 and 10 million rows (mlp_gpu/bench/rows.py)")
    b.add_argument("--repeats", type=int, default=5, help="timed epochs per cell, after one warm-up epoch "
                   "(rows: rounds of resident and streamed runs)")
    b.add_argument("--out", default="benchmarks/results", help="folder for the reports")
    b.add_argument("--no-plot", action="store_true")
    b.add_argument("--parallel", action="store_true",
                   help="run every cell in its own process at once (a crowded shared host) instead of interleaving")
    b.add_argument("--json", action="store_true", help="print the ratios as JSON")
    b.set_defaults(func=cmd_bench)

    x = sub.add_parser("export", help="write a saved model as ONNX (for ONNX Runtime) or as a Keras .keras file")
    x.add_argument("model", help="a model saved by mlp-gpu train or model.save")
    x.add_argument("output", help="the file to write: name.onnx, or name.keras for Keras 3")
    x.add_argument("--input-dtype", default="float32", choices=["float32", "uint8"],
                   help="uint8: the graph takes raw pixels and scales them by 1/255, as mlp-gpu predict does")
    x.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: mlp_gpu's)")
    x.set_defaults(func=cmd_export)

    c = sub.add_parser("convert", help="write the IDX data set to one HDF5 file for `train --data FILE.h5`")
    c.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    c.add_argument("--data", default=None, help="folder with the four IDX files (default: search)")
    c.add_argument("--output", required=True, help="the HDF5 file to write")
    c.set_defaults(func=cmd_convert)

    i = sub.add_parser("info", help="versions, backends and the device")
    i.add_argument("--backend", default="auto", choices=["auto", "numpy", "cupy"])
    i.set_defaults(func=cmd_info)
    return p


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text}")
    return value


def _without_workers(argv):
    """argv less its --workers N (or --workers=N), for the ranks that --workers starts."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def _configure_logging(level_name):
    from .distributed import launcher_variable

    level = logging.getLevelName(level_name.upper())
    variable = launcher_variable()
    rank = os.environ.get(variable) if variable else None
    if rank not in (None, "0") and isinstance(level, int):  # under mpiexec the other ranks log warnings only
        level = max(level, logging.WARNING)
    prefix = "%(name)s" if rank is None else f"%(name)s[rank {rank}]"
    logging.basicConfig(level=level, format=prefix + ": %(message)s")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    if getattr(args, "workers", 1) > 1:
        from .distributed import spawn_workers

        return spawn_workers(args.workers, _without_workers(argv))
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, IsADirectoryError, RuntimeError) as exc:
        _end_all_ranks(f"mlp-gpu: error: {exc}")
        print(f"mlp-gpu: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _end_all_ranks(message):
    """With several ranks, a rank that returned would leave the others waiting: end them all."""
    from . import distributed

    comm = distributed.current()
    if comm is not None and comm.size > 1:
        comm.abort(message, 2)


if __name__ == "__main__":
    sys.exit(main())
