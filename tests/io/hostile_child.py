"""A fork server for the hostile-file tests: imports mlp_gpu once, then loads each file in a forked child
under a memory limit (RLIMIT_AS) and a timeout (SIGALRM), so that a crash, a hang or a memory bomb ends
only that child and is seen by its exit status.

Protocol (one JSON object a line): the test writes {"loader", "args", "out", "memory", "timeout"}; the
child writes its result to "out" (the exception's type and message, or "loaded" and whether a canary's
bytes appear in any weight); the server answers {"status": exit code, or -signal}.
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import traceback

import numpy as np

import mlp_gpu
from mlp_gpu import Dense, Input, Sequential, cli
from mlp_gpu.data.idx import read_idx
from mlp_gpu.data.hdf5 import open_hdf5
from mlp_gpu.io.bounded import load_npy

CANARY = b"CANARY\x00\x7f"  # the bytes of every file a hostile file must not read


def base_model():
    """The architecture the hostile model files are made from (tests/hostile.py)."""
    return Sequential([Input((3,)), Dense(4, "relu"), Dense(2, "softmax")], backend="numpy")


def _arrays(model):
    arrays = [np.asarray(w) for w in model.get_weights()]
    if model.optimizer is not None and model.optimizer.state is not None:
        arrays.append(np.asarray(model.optimizer.state))
    return arrays


def _loaded(model=None, arrays=()):
    arrays = list(arrays) + (_arrays(model) if model is not None else [])
    blob = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
    result = {"outcome": "loaded", "canary": CANARY in blob}
    if model is not None and model.optimizer is not None:
        result["iterations"] = model.optimizer.iterations
    return result


def _load_model(path):
    return _loaded(mlp_gpu.load_model(path, backend="numpy"))


def _load_weights(path):
    model = base_model().build(seed=0)
    model.load_weights(path)
    return _loaded(model)


def _open_hdf5(path, group=None):
    x, y = open_hdf5(path, group)
    return _loaded(arrays=[x[:4], y[:4]])


def _cli(*argv):
    with tempfile.TemporaryFile("w+") as err:  # outside the folder the test watches
        with contextlib.redirect_stderr(err):
            code = cli.main(["--log-level", "WARNING", *argv])  # stderr: the error line alone
        err.seek(0)
        return {"outcome": "cli", "code": code, "stderr": err.read()}


LOADERS = {"load_model": _load_model, "load_weights": _load_weights, "open_hdf5": _open_hdf5,
           "read_idx": lambda path: _loaded(arrays=[read_idx(path)]),
           "load_npy": lambda path: _loaded(arrays=[load_npy(path)]), "cli": _cli}


def _child(request):
    vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + request["memory"], vm + request["memory"]))
    signal.alarm(request["timeout"])
    try:
        result = LOADERS[request["loader"]](*request["args"])
    except SystemExit as exc:  # argparse
        result = {"outcome": "exit", "code": exc.code}
    except BaseException as exc:  # the tests judge which are right: report all
        result = {"outcome": "error", "type": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__],
                  "message": str(exc), "traceback": traceback.format_exc(limit=4)}
    with open(request["out"], "w") as fh:
        json.dump(result, fh)


def serve():
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                quiet = os.open(os.devnull, os.O_WRONLY)
                os.dup2(quiet, 1)  # the protocol's line is the server's; what a loader prints goes nowhere
                os.chdir(request["cwd"])
                _child(request)
            except BaseException:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"status": code}), flush=True)


if __name__ == "__main__":
    serve()
