"""The ``mlp-gpu`` command: train, evaluate, predict, export, info."""
from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.util
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .io.bounded import load_npy
from .io.onnx import OPSET
from .io.safe_h5 import checked_int
from . import activations
from . import (Adam, Dense, Flatten, Input, SGD, Sequential, __version__, available_backends,
               callbacks, data, distributed, get_backend, load_model)
from .benchmarks import run_suite
from .data.hdf5 import open_hdf5, write_hdf5
from .data.idx import FASHION_CLASSES, find_dataset
from .data.sources import split_rows
from .distributed import launcher_variable, spawn_workers
from .io.files import check_save_target
from .plots import plot_confusion

log = logging.getLogger("mlp_gpu")

# The optional packages a command may need: (the option, the module, the extra that brings it).
EXTRAS = {"plot": ("--plot", "matplotlib", "plot"), "tensorboard": ("--tensorboard", "tensorboardX", "tensorboard"),
          "onnx": ("export to .onnx", "onnx", "onnx"), "workers": ("--workers", "mpi4py", "distributed")}
# export's formats, by the output's extension
EXPORT_FORMATS = {".onnx": "ONNX", ".keras": "Keras 3 .keras"}
# Below this many rows per rank and step, one process beat two on the 2-core machine (bench-dist.md, README:
# --workers 2 at batch 32 took 153 s against 24 s for one process).
WORKERS_MIN_RANK_BATCH = 256


def _hdf5_data(args) -> bool:
    """--data names a file (HDF5), not a folder of IDX files; a FIFO or device counts as a file, which
    the HDF5 reader then refuses without opening it."""
    return args.data is not None and Path(args.data).exists() and not Path(args.data).is_dir()


def _load_data(args, need_test=True):
    """((x, y), (x_test, y_test)): IDX arrays from a folder, or h5py datasets (read as they are used) from
    an HDF5 file in the layout ``mlp-gpu convert`` writes; the test pair is None if the file has none."""

    if _hdf5_data(args):
        train = open_hdf5(args.data)
        test = open_hdf5(args.data, "test") if need_test or "test" in train[0].file else None
        return train, test
    loader = data.load_fashion_mnist if args.dataset == "fashion-mnist" else data.load_mnist
    return loader(args.data)  # uint8 pixels; fit scales them on the device


MAX_CLASSES = 1 << 16  # a new model's output layer: a label of 2**31 - 1 must not size it


def _classes(y, where) -> int:
    """The class count of labels y: the ``classes`` attribute of an HDF5 data set, or the largest label + 1."""
    holders = [y.attrs, y.file.attrs] if hasattr(y, "attrs") else []  # convert writes it on the file
    attr = next((h["classes"] for h in holders if "classes" in h), None)
    if attr is not None:
        return checked_int(attr, 2, MAX_CLASSES, lambda problem: _refuse(f"{where} y@classes {problem}"))
    labels = np.asarray(y[:])
    if not labels.size or labels.dtype.kind not in "fiub" or not np.isfinite(labels).all():
        raise ValueError(f"{where}: expected finite class labels in y, got {labels.size} of dtype {labels.dtype}")
    top = int(labels.max()) + 1
    if not 2 <= top <= MAX_CLASSES:
        raise ValueError(f"{where}: the largest label is {top - 1}; expected class labels 0 to {MAX_CLASSES - 1}")
    return top


@contextlib.contextmanager
def _naming_data_file(args):
    """A bad value found in x or y while fit or evaluate reads a --data file: say which file."""
    try:
        yield
    except ValueError as exc:
        if not _hdf5_data(args) or not str(exc).startswith(("x", "y")):
            raise
        raise ValueError(f"--data {args.data!r}: {exc}") from None


def _refuse(message):
    raise ValueError(message)


def _check_output_path(path: Path):
    try:
        check_save_target(path)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise SystemExit(f"mlp-gpu: --output {exc}") from None


def _new_model(args, classes, input_shape, backend):
    opt = SGD(args.lr, momentum=args.momentum) if args.optimizer == "sgd" else Adam(args.lr)
    layers = [Input(input_shape), Flatten()] + [Dense(u, args.activation) for u in args.hidden] \
        + [Dense(classes, "softmax")]
    model = Sequential(layers, backend=backend)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=opt, metrics=["accuracy"], seed=args.seed)
    return model


def cmd_train(args):
    out = Path(args.output)
    _check_output_path(out)  # before an hour of training, not after
    chief = distributed.init().is_chief  # under mpiexec: the engine, and each rank's GPU, before any model
    backend = get_backend(args.backend, graph=not args.no_graph, tf32=args.tf32)
    (x_full, y_full), test = _load_data(args, need_test=False)
    if _hdf5_data(args):  # row ranges of the file's datasets: nothing is read before fit streams it

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
        model = _new_model(args, _classes(y_full, f"--data {args.data!r}"), tuple(x.shape[1:]), backend)
        initial_epoch, seed = 0, args.seed
    if args.verbose and chief:
        model.summary()
    cbs = [callbacks.ModelCheckpoint(args.checkpoint)] if args.checkpoint else []
    if args.tensorboard:
        cbs.append(callbacks.TensorBoard(args.tensorboard))
    start = time.perf_counter()
    with _naming_data_file(args):
        history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_data=(x_val, y_val),
                            on_nan="raise", seed=seed, verbose=args.verbose, initial_epoch=initial_epoch,
                            callbacks=cbs)
    seconds = time.perf_counter() - start
    if not chief:  # rank 0 alone saves, evaluates and reports
        return
    model.save(out)
    test_loss, test_acc = model.evaluate(*test, verbose=0) if test is not None else (None, None)
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
    model = load_model(args.model, backend=args.backend)
    if model.loss is None:
        raise ValueError(f"{args.model!r} holds weights only; evaluate needs a model saved with its loss")
    _, (x_test, y_test) = _load_data(args)
    with _naming_data_file(args):
        loss, acc = model.evaluate(x_test, y_test, verbose=0)
    result = {"test_loss": loss, "test_accuracy": acc}
    if args.plot:
        names = FASHION_CLASSES if args.dataset == "fashion-mnist" else [str(k) for k in range(10)]
        pred = model.predict(x_test, verbose=0).argmax(axis=1)
        result["plot"] = str(plot_confusion(y_test, pred, names, args.plot))
    print(json.dumps(result) if args.json
          else f"test loss {loss:.4f}; test accuracy {acc:.4f} ({len(y_test)} images)"
          + (f"; confusion matrix in {result['plot']}" if "plot" in result else ""))


def cmd_predict(args):
    model = load_model(args.model, backend=args.backend)
    if args.input:
        x, y = load_npy(args.input), None
    else:
        _, (x, y) = _load_data(args)
        x, y = x[args.start:args.start + args.count], y[args.start:args.start + args.count]
    probs = model.predict(x, verbose=0)
    if y is not None and len(y) and (np.min(y) < 0 or np.max(y) >= probs.shape[1]):
        raise ValueError(f"--data {args.data!r}: labels range from {np.min(y)} to {np.max(y)}; the model has "
                         f"{probs.shape[1]} classes (0 to {probs.shape[1] - 1})")
    names = data.FASHION_CLASSES if args.dataset == "fashion-mnist" and probs.shape[1] == 10 else None
    rows = []
    for i, p in enumerate(probs):
        k = int(p.argmax())
        row = {"index": args.start + i if y is not None else i, "class": k, "probability": float(p[k])}
        if names:
            row["name"] = names[k]
        if y is not None:
            row["true"] = int(y[i])
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return
    for row in rows:
        label = f"{row['class']} {row['name']}" if names else str(row["class"])
        truth = "" if y is None else f"  (true {row['true']}{' ' + names[row['true']] if names else ''})"
        print(f"{row['index']}: {label}  p={row['probability']:.3f}{truth}")


def cmd_export(args):
    model = load_model(args.model, backend="numpy")  # export reads the weights on the host
    if _export_suffix(args.output) == ".keras":
        model.save(args.output)
        print(f"exported {args.model} to {args.output} (Keras 3 .keras)")
        return
    model.export(args.output, format="onnx", verbose=False, input_dtype=args.input_dtype,
                 opset_version=args.opset)
    print(f"exported {args.model} to {args.output} (ONNX opset {args.opset}, {args.input_dtype} input)")


def _export_suffix(output) -> str:
    suffix = Path(output).suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise ValueError(f"output {str(output)!r}: expected a name ending in "
                         + " or ".join(f"{ext} ({what})" for ext, what in EXPORT_FORMATS.items())
                         + f"; export writes no other format (got {suffix or 'no extension'!r})")
    return suffix


def cmd_convert(args):
    (x, y), test = _load_data(args)
    source = find_dataset(args.dataset, args.data)["train_images"].parent
    write_hdf5(args.output, x, y, test=test, attrs={"dataset": args.dataset, "classes": int(y.max()) + 1,
                                                     "source": str(source)})
    print(f"wrote {args.output}: {len(x):,} training rows {x.dtype}{tuple(x.shape[1:])} in x, y and "
          f"{len(test[0]):,} test rows in test/x, test/y")


def cmd_info(args):
    import h5py


    print(f"mlp_gpu {__version__}; python {platform.python_version()}; numpy {np.__version__}; "
          f"h5py {h5py.__version__}")
    for name, reason in available_backends().items():
        print(f"backend {name}: {'available' if reason is None else 'unavailable: ' + reason}")
    backend = get_backend(args.backend)
    print("selected: " + ", ".join(f"{k}={v}" for k, v in backend.describe().items()))


def cmd_bench(args):
    result = run_suite(args.matrix, repeats=args.repeats, out=args.out, plot=not args.no_plot,
                       parallel=args.parallel)
    if args.json:
        print(json.dumps(result["ratios"]))


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, except where there is none to show (None, a flag's False)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors suggest the nearest valid choice (``trian`` -> ``train``)."""

    def error(self, message):
        if "invalid choice: '" in message:
            bad = message.split("invalid choice: '", 1)[1].split("'", 1)[0]
            choices = [c for action in self._actions for c in (action.choices or ())]
            message += _did_you_mean(bad, [str(c) for c in choices])
        super().error(message)


def _did_you_mean(word, candidates) -> str:
    close = difflib.get_close_matches(word, candidates, n=2, cutoff=0.75)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mlp-gpu", description="Train and use MLPs on CUDA (CuPy) or NumPy.",
                formatter_class=_HelpFormatter)
    p.add_argument("--log-level", default="INFO", help="logging level: DEBUG, INFO, WARNING or ERROR")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error, not only its message")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p.commands = {}

    def command(name, help_text, func):
        sp = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_HelpFormatter)
        sp.set_defaults(func=func)
        p.commands[name] = sp
        return sp

    def backend_option(sp):
        sp.add_argument("--backend", default="auto", choices=["auto", "numpy", "cupy"],
                        help="auto: CuPy where it imports and a GPU answers, else NumPy")

    def dataset_options(sp, hdf5=True):
        sp.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"],
                        help="which IDX data set to read")
        sp.add_argument("--data", default=None, help="folder with the four IDX files (default: search "
                        "$MLP_GPU_DATA, ~/.cache/mlp_gpu/<dataset>, /usr/share/datasets/<dataset>)"
                        + (", or an HDF5 file with x, y (and test/x, test/y) as `mlp-gpu convert` writes"
                           if hdf5 else ""))

    def common(sp):
        backend_option(sp)
        dataset_options(sp)
        sp.add_argument("--json", action="store_true", help="print the result as JSON")

    t = command("train", "train an MLP (defaults: the reference Fashion-MNIST workload)", cmd_train)
    common(t)
    t.add_argument("--epochs", type=int, default=30, help="epochs to train")
    t.add_argument("--batch-size", type=int, default=32, help="rows per step (over all ranks with --workers)")
    t.add_argument("--hidden", type=int, nargs="+", default=[300, 100], help="hidden layer widths")
    t.add_argument("--activation", default="relu", choices=tuple(activations.ACTIVATIONS),
                   help="the hidden layers' activation")
    t.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"], help="the optimizer")
    t.add_argument("--lr", type=float, default=0.01, help="learning rate")
    t.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    t.add_argument("--validation-size", type=int, default=5000,
                   help="the first this many training rows validate, the rest train")
    t.add_argument("--seed", type=int, default=42, help="seed of the initial weights and the shuffles")
    t.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                   help="0: silent, 1: a progress bar per epoch, 2: one line per epoch")
    t.add_argument("--output", default="model.h5", help="where to save the trained model")
    t.add_argument("--plot", action="store_true",
                   help="save training curves as <output>-history.png (needs the plot extra)")
    t.add_argument("--checkpoint", default=None,
                   help="save a resumable checkpoint after every epoch (may hold {epoch:02d})")
    t.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="write TensorBoard logs (loss, accuracy, learning rate per epoch) under DIR "
                        "(needs the tensorboard extra)")
    t.add_argument("--resume", default=None, help="continue from a checkpoint or saved model")
    t.add_argument("--no-graph", action="store_true", help="cupy: launch each kernel instead of replaying a graph")
    t.add_argument("--tf32", action="store_true", help="cupy: let cuBLAS use TF32 tensor cores (off by default)")
    t.add_argument("--workers", type=_positive_int, default=1,
                   help="train data-parallel on N processes of this machine, started through mpiexec "
                        "(the global batch stays --batch-size; needs the distributed extra); or start this "
                        "command with mpiexec -n N")

    e = command("evaluate", "loss and accuracy of a saved model on the test set", cmd_evaluate)
    e.add_argument("model", help="a model saved by mlp-gpu train or model.save")
    common(e)
    e.add_argument("--plot", default=None, metavar="PNG",
                   help="write a confusion matrix picture (needs the plot extra)")

    pr = command("predict", "predicted classes of test images (or of a .npy array)", cmd_predict)
    pr.add_argument("model", help="a model saved by mlp-gpu train or model.save")
    common(pr)
    pr.add_argument("--input", default=None, help=".npy array of images (default: the test set)")
    pr.add_argument("--start", type=int, default=0, help="the first test image to predict")
    pr.add_argument("--count", type=int, default=10, help="how many test images to predict")

    b = command("bench", "time workloads x backends x peers; write JSON, Markdown and a PNG", cmd_bench)
    b.add_argument("--matrix", default="auto", choices=["auto", "cpu", "gpu", "smoke", "toolbox", "dist", "rows"],
                   help="auto: the gpu matrix where CuPy has a device, else the cpu one; dist: 1 against 2 MPI "
                        "ranks on the CPU; rows: resident against streamed training from synthetic data on disk "
                        "at 55 thousand, 1 and 10 million rows (mlp_gpu/benchmarks/rows.py)")
    b.add_argument("--repeats", type=int, default=5, help="timed epochs per cell, after one warm-up epoch "
                   "(rows: rounds of resident and streamed runs)")
    b.add_argument("--out", default="benchmarks/results", help="folder for the reports")
    b.add_argument("--no-plot", action="store_true", help="write no PNG")
    b.add_argument("--parallel", action="store_true",
                   help="run every cell in its own process at once (a crowded shared host) instead of interleaving")
    b.add_argument("--json", action="store_true", help="print the ratios as JSON")

    x = command("export", "write a saved model as ONNX (for ONNX Runtime) or as a Keras .keras file; the "
                "format comes from the output's extension", cmd_export)
    x.add_argument("model", help="a model saved by mlp-gpu train or model.save")
    x.add_argument("output", help="the file to write: name.onnx (needs the onnx extra), or name.keras for Keras 3")
    x.add_argument("--input-dtype", default="float32", choices=["float32", "uint8"],
                   help="uint8: the graph takes raw pixels and scales them by 1/255, as mlp-gpu predict does")
    x.add_argument("--opset", type=int, default=OPSET, help="ONNX opset version (13 or later)")

    c = command("convert", "write the IDX data set to one HDF5 file for `train --data FILE.h5`", cmd_convert)
    dataset_options(c, hdf5=False)
    c.add_argument("--output", required=True, help="the HDF5 file to write")

    i = command("info", "versions, backends and the device", cmd_info)
    backend_option(i)
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
    level = logging.getLevelName(level_name.upper())
    variable = launcher_variable()
    rank = os.environ.get(variable) if variable else None
    if rank not in (None, "0") and isinstance(level, int):  # under mpiexec the other ranks log warnings only
        level = max(level, logging.WARNING)
    prefix = "%(name)s" if rank is None else f"%(name)s[rank {rank}]"
    logging.basicConfig(level=level, format=prefix + ": %(message)s")


def parse_args(argv):
    """The parsed arguments; an option the command does not have is refused with the command's usage and
    the options nearest to it (``train --epocs`` -> ``--epochs``), not the top-level usage."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        sub = parser.commands[args.command]
        options = [o for action in sub._actions for o in action.option_strings]
        hints = "".join(_did_you_mean(word.split("=", 1)[0], options) for word in unknown if word.startswith("-"))
        sub.error(f"unrecognized arguments: {' '.join(unknown)}{hints}")
    return args


def check_extras(args):
    """Refuse, before any work, an option whose optional package is not installed: name the package and the
    extra that brings it. Raises MissingExtra."""
    wanted = []
    if getattr(args, "plot", None):
        wanted.append("plot")
    if getattr(args, "tensorboard", None):
        wanted.append("tensorboard")
    if args.command == "export" and _export_suffix(args.output) == ".onnx":
        wanted.append("onnx")
    if getattr(args, "workers", 1) > 1:
        wanted.append("workers")
    for key in wanted:
        option, module, extra = EXTRAS[key]
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(f"{option} needs {module}, which is not installed; "
                               f"`pip install 'mlp_gpu[{extra}]'` brings it")


class MissingExtra(RuntimeError):
    """An option's optional package is missing."""


def warn_workers(workers: int, batch_size: int, cores: int | None = None) -> str | None:
    """The warning for ``--workers N`` where one process is likely faster on this machine, or None."""
    cores = len(os.sched_getaffinity(0)) if cores is None else cores
    per_rank = batch_size / workers
    reasons = []
    if workers > cores:
        reasons.append(f"{workers} ranks on {cores} cores")
    if per_rank < WORKERS_MIN_RANK_BATCH:
        reasons.append(f"{per_rank:g} rows per rank and step (--batch-size {batch_size} over {workers} ranks; "
                       f"below {WORKERS_MIN_RANK_BATCH} the all-reduce costs about what a rank saves)")
    if not reasons:
        return None
    return (f"--workers {workers}: {'; '.join(reasons)}; this machine has {cores} cores. One process is likely "
            f"faster here (on 2 cores, --workers 2 at batch 32 took 153 s against 24 s for one process); "
            f"data parallel pays with a larger --batch-size or one rank per core")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    _configure_logging(args.log_level)
    try:
        check_extras(args)
        if getattr(args, "workers", 1) > 1:
            warning = warn_workers(args.workers, args.batch_size)
            if warning:
                log.warning(warning)
            return spawn_workers(args.workers, _without_workers(argv))
        args.func(args)
    except (ValueError, OSError, RuntimeError, MemoryError) as exc:  # OSError: file errors name their file
        if args.debug:
            raise
        message = "mlp-gpu: error: " + (" ".join(str(exc).split("\n")) or type(exc).__name__)
        _end_all_ranks(message)
        print(message, file=sys.stderr)
        return 2
    return 0


def _end_all_ranks(message):
    """With several ranks, a rank that returned would leave the others waiting: end them all."""

    comm = distributed.current()
    if comm is not None and comm.size > 1:
        comm.abort(message, 2)


if __name__ == "__main__":
    sys.exit(main())
