"""Files from strangers (issue #23): a model or data file can never read other files, crash, hang or
exhaust memory. Each hostile file is made here from a valid one (model files resealed, as an attacker
would) and loaded in a forked child (tests/io/hostile_child.py) under a memory limit and a timeout; each test
asserts the error's type and message, that the child survived, that no canary bytes reached a weight
and that nothing in the folder was written or changed.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import mlp_gpu
from mlp_gpu.optimizers.nadam import nadam_u_product

from . import hostile as H

ROOT = Path(__file__).resolve().parents[2]
MEMORY = 1 << 30  # a child may map 1 GiB beyond what it had at the fork; every bomb here asks for more
TIMEOUT = 60      # seconds a child may take; a FIFO opened or a loop over 10^9 steps would take forever


@pytest.fixture(scope="module")
def server():
    env = {"PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
           "MLP_GPU_BACKEND": "numpy"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.io.hostile_child"], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    yield proc
    proc.stdin.close()
    proc.wait(60)


@pytest.fixture
def folder(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    H.canaries(work)
    return work


def _snapshot(folder):
    state = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else None
        state[str(p.relative_to(folder))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return state


def load(server, folder, loader, *args):
    """Run ``loader(*args)`` in a forked child in ``folder``; its result, once the checks every load
    must pass have passed: the child exited normally, and the folder is as it was."""
    out = folder.parent / "result.json"
    out.unlink(missing_ok=True)
    before = _snapshot(folder)
    request = {"loader": loader, "args": [str(a) for a in args], "out": str(out), "cwd": str(folder),
               "memory": MEMORY, "timeout": TIMEOUT}
    server.stdin.write(json.dumps(request) + "\n")
    server.stdin.flush()
    status = json.loads(server.stdout.readline())["status"]
    assert status == 0, f"the child died (status {status}: {'SIGALRM, a hang' if status == -14 else 'a crash'})"
    result = json.loads(out.read_text())
    assert _snapshot(folder) == before, "loading wrote or changed files"
    if result["outcome"] == "loaded":
        assert not result["canary"], "another file's bytes reached the weights"
    return result


def refused(result, pattern, path, error="ValueError"):
    assert result["outcome"] == "error", f"expected a refusal, got {result}"
    assert error in result["mro"], f"{result['type']}: {result['message']}\n{result['traceback']}"
    assert "MemoryError" not in result["mro"]
    assert re.search(pattern, result["message"]), result["message"]
    assert Path(path).name in result["message"], f"the message does not name the file: {result['message']}"


def cli_refused(result, pattern, path):
    assert result["outcome"] == "cli" and result["code"] == 2, result
    lines = result["stderr"].strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result["stderr"], result["stderr"]
    assert re.search(pattern, lines[0]) and Path(path).name in lines[0], lines[0]


# ---- a weight replaced by each kind of hostile object, in every model format -----------------------
ATTACKS = sorted(H.WEIGHT_ATTACKS)


def _edited(path, key, attack, folder):
    change, _ = H.WEIGHT_ATTACKS[attack]
    return H.edit_h5(path, lambda f: H.replace(change)(f, key, folder))


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("key", ["weights/dense/kernel", "optimizer/state"])
def test_our_h5_refuses(server, folder, attack, key):
    path = _edited(H.model_file(folder), key, attack, folder)
    refused(load(server, folder, "load_model", path), H.WEIGHT_ATTACKS[attack][1], path, "ModelFileError")


@pytest.mark.parametrize("attack", ATTACKS)
def test_load_weights_refuses(server, folder, attack):
    path = _edited(H.model_file(folder), "weights/dense/kernel", attack, folder)
    refused(load(server, folder, "load_weights", path), H.WEIGHT_ATTACKS[attack][1], path, "ModelFileError")


@pytest.mark.parametrize("attack", ATTACKS)
def test_keras_weights_h5_refuses(server, folder, attack):
    path = _edited(H.keras_weights_file(folder), "layers/dense/vars/0", attack, folder)
    refused(load(server, folder, "load_weights", path), H.WEIGHT_ATTACKS[attack][1], path, "ModelFileError")


@pytest.mark.parametrize("attack", ["external-link", "external-storage", "virtual", "strings", "shape-bomb"])
def test_keras2_h5_refuses(server, folder, attack):
    path = _edited(H.keras2_file(folder), "dense/dense/kernel:0", attack, folder)
    refused(load(server, folder, "load_weights", path), H.WEIGHT_ATTACKS[attack][1], path, "ModelFileError")


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("loader", ["load_model", "load_weights"])
def test_keras_zip_refuses(server, folder, attack, loader):
    """Among them the virtual kernel that crashed the interpreter inside h5py (read from memory)."""
    change, pattern = H.WEIGHT_ATTACKS[attack]
    path = H.rezip(H.keras_zip(folder), weights=lambda f: H.replace(change)(f, "layers/dense/vars/0", folder))
    refused(load(server, folder, loader, path), pattern, path, "ModelFileError")


@pytest.mark.parametrize("attack", ["external-link", "external-storage", "virtual", "shape-bomb", "strings",
                                    "references", "missing-filter", "soft-link-dangling", "group"])
@pytest.mark.parametrize("key", ["x", "test/x", "y"])
def test_hdf5_data_refuses(server, folder, attack, key):
    if key == "y" and attack == "virtual":
        pytest.skip("the canary has no (60,) dataset; x covers virtual data sets")
    path = _edited(H.data_file(folder), key, attack, folder)
    result = load(server, folder, "open_hdf5", path, *(["test"] if key.startswith("test/") else []))
    refused(result, H.WEIGHT_ATTACKS[attack][1], path)


# ---- structure, counters and configs ------------------------------------------------------------
def _swap(key, value):
    def change(f):
        del f[key]
        f[key] = value
    return change


def _attr(key, name, value):
    return lambda f: f[key].attrs.__setitem__(name, value)


STRUCTURE = {
    "weights-a-dataset": (_swap("weights", np.zeros(3)), "'/weights': is a Dataset, expected a group"),
    "optimizer-a-dataset": (_swap("optimizer", np.zeros(3)), "'/optimizer': is a Dataset, expected a group"),
    "iterations-inf": (_attr("optimizer", "iterations", np.inf), "@iterations': is inf \\(float64\\)"),
    "iterations-2**64-1": (_attr("optimizer", "iterations", np.uint64(2**64 - 1)), "@iterations': is 18446744"),
    "iterations-text": (_attr("optimizer", "iterations", "many"), "@iterations': is many \\(str\\)"),
    "epoch-negative": (_attr("optimizer", "epoch", -1), "@epoch': is -1, expected an integer in"),
    "epoch-2**40": (_attr("optimizer", "epoch", 2**40), "@epoch': is 1099511627776"),
    "draws-array": (_attr("optimizer", "draws", np.arange(3)), "@draws': has shape \\(3,\\)"),
    "draws-inf": (_attr("optimizer", "draws", -np.inf), "@draws': is -inf"),
    "seed-negative": (_attr("optimizer", "seed", -5), "@seed': is -5"),
    "format-version-inf": (_attr("/", "format_version", np.inf), "@format_version': is inf"),
    "format-version-2**64-1": (_attr("/", "format_version", np.uint64(2**64 - 1)), "@format_version': is 1844674"),
    "config-wide-dense": (H.set_model_config(H.our_wide_dense), r"expected float32\(3, 2000000\)"),
    "config-huge-input": (H.set_model_config(H.our_huge_input), r"expected float32\(10000000000, 4\)"),
    "config-deep": (H.set_model_config(lambda c: H.DEEP), "nests deeper than 64"),
    "config-long-number": (H.set_model_config(lambda c: H.LONG_NUMBER), "a number of 100,001 characters"),
    "config-too-long": (H.set_model_config(lambda c: json.dumps({**c, "pad": " " * (17 << 20)})),
                        "characters; at most 16,777,216"),
    "config-a-number": (H.set_model_config(lambda c: "5"), "expected a dict with a 'layers' list"),
    "config-bytes-array": (lambda f: f.attrs.__setitem__("model_config", np.zeros(4)), "is ndarray, expected text"),
}


@pytest.mark.parametrize("case", sorted(STRUCTURE))
def test_our_h5_structure_counters_and_config(server, folder, case):
    change, pattern = STRUCTURE[case]
    path = H.edit_h5(H.model_file(folder), change)
    refused(load(server, folder, "load_model", path), pattern, path, "ModelFileError")


def _ten_to_the_twelve(f):  # 10^12 rows under layers/dense/vars: once walked row by row
    del f["layers/dense/vars"]
    f.create_dataset("layers/dense/vars", (10**12,), np.float32, chunks=(10**5,))


KERAS_STRUCTURE = {
    "vars-bomb": (_ten_to_the_twelve, "declares \\(1000000000000,\\)"),
    "vars-a-scalar": (_swap("layers/dense/vars", np.float32(1)), "vars': is a Dataset, expected a group"),
    "layers-a-dataset": (_swap("layers", np.zeros(3)), "'/layers': is a Dataset, expected a group"),
    "vars-misnamed": (lambda f: f.move("layers/dense/vars/1", "layers/dense/vars/bias"), "expected 0 to 1"),
}


@pytest.mark.parametrize("case", sorted(KERAS_STRUCTURE))
def test_keras_structure(server, folder, case):
    change, pattern = KERAS_STRUCTURE[case]
    path = H.edit_h5(H.keras_weights_file(folder), change)
    refused(load(server, folder, "load_weights", path), pattern, path, "ModelFileError")


def _keras_optimizer(key, value):
    return _swap(f"optimizer/vars/{key}", value)


ZIP_CASES = {
    "config-wide-dense": ({"config": H.wide_dense}, r"expected float\(3, 2000000\)"),
    "config-huge-input": ({"config": H.huge_input}, r"expected float\(10000000000, 4\)"),
    "config-deep": ({"config": lambda c: H.DEEP}, "nests deeper than 64"),
    "config-long-number": ({"config": lambda c: H.LONG_NUMBER.replace("Dense", "Sequential")}, "100,001 characters"),
    "config-not-utf8": ({"config": lambda c: b"\xff\xfe{"}, "is not UTF-8"),
    "member-bomb": ({"members": {"model.weights.h5": bytes(64 << 20)}, "compression": zipfile.ZIP_DEFLATED},
                    "declares 67,108,864 bytes but stores .*decompression bomb"),
    "iterations-inf": ({"weights": _keras_optimizer(0, np.float64(np.inf))}, "vars/0': has dtype float64"),
    "iterations-2**63-1": ({"weights": _keras_optimizer(0, np.int64(2**63 - 1))}, "iterations\\) is 9223372036"),
    "state-strings": ({"weights": _keras_optimizer(2, np.full(H.KERNEL, b"0.5"))}, "vars/2': has dtype \\|S3"),
    "state-wrong-shape": ({"weights": _keras_optimizer(3, np.zeros(5, np.float32))},
                          r"vars/3': is float32\(5,\), expected shape \(3, 4\)"),
    "lr-a-string": ({"weights": _keras_optimizer(1, b"fast")}, "vars/1': has dtype .*expected floats"),
}


@pytest.mark.parametrize("case", sorted(ZIP_CASES))
def test_keras_zip_structure(server, folder, case):
    edits, pattern = ZIP_CASES[case]
    path = H.rezip(H.keras_zip(folder), **edits)
    refused(load(server, folder, "load_model", path), pattern, path, "ModelFileError")


# ---- the bounded counters: Nadam's momentum product ------------------------------------------------
@pytest.mark.parametrize("iterations", [10**9, 2**62])
def test_nadam_checkpoint_with_a_huge_step_count_loads_at_once(server, folder, iterations):
    path = H.nadam_file(folder, np.int64(iterations))
    result = load(server, folder, "load_model", path)
    assert result["outcome"] == "loaded", result
    assert result["iterations"] == float(np.float32(iterations))


def test_nadam_counter_beyond_its_range_is_refused(server, folder):
    path = H.nadam_file(folder, np.int64(2**62 + 1))
    refused(load(server, folder, "load_model", path), "@iterations': is 4611686018427387905", path, "ModelFileError")


def test_nadam_product_is_the_device_loop_where_exact_and_bounded_beyond():
    f = np.float32

    def loop(beta_1, n):
        p = f(1)
        for t in range(1, n + 1):
            p = p * (f(beta_1) * (f(1) - f(0.5) * f(0.96 ** t)))
        return p

    for beta_1 in (0.9, 0.99, 0.0):
        for n in (0, 1, 7, 400, 3000):
            assert nadam_u_product(beta_1, n) == loop(beta_1, n)
    b = 1 - 2**-24  # the largest float32 under 1: the slowest product there is
    assert nadam_u_product(b, 2**62) == 0  # past the exact steps, a power: 2^62 factors under 1 give 0
    beyond = float(nadam_u_product(b, 2**21))
    assert beyond == pytest.approx(float(loop(b, 400)) * float(f(b)) ** (2**21 - 400), rel=0.05)


# ---- files that are not what they say: FIFOs, gzip and .npy headers -------------------------------
@pytest.mark.parametrize("name,loader,pattern", [
    ("m.h5", "load_model", "not a regular file"), ("m.keras", "load_model", "not a regular file"),
    ("w.h5", "load_weights", "not a regular file"), ("d.h5", "open_hdf5", "not a regular file"),
    ("train-images-idx3-ubyte", "read_idx", "not a regular file"), ("x.npy", "load_npy", "not a regular file")])
def test_a_fifo_is_refused_without_blocking(server, folder, name, loader, pattern):
    path = H.fifo(folder, name)
    refused(load(server, folder, loader, path), pattern, path)


def test_idx_gzip_bomb_is_refused(server, folder):
    path = H.idx_gzip_bomb(folder)
    refused(load(server, folder, "read_idx", path), "compressed \\(refused beyond 100:1\\)", path, "IDXError")


NPY = {
    "huge-shape": ("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 28, 28), }",
                   "declares shape \\(1000000000000, 28, 28\\)"),
    "code": ("{'descr': __import__('os').system('touch pwned'), 'fortran_order': False, 'shape': (4,), }",
             "not a plain .npy header"),
    "objects": ("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", "dtype object; expected numbers"),
    "long-header": ("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }" + " " * 5000, "header; at most"),
    "huge-dim": ("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "9" * 40 + ",), }", "no array can have"),
}


@pytest.mark.parametrize("case", sorted(NPY))
def test_npy_headers(server, folder, case):
    header, pattern = NPY[case]
    path = H.npy_with_header(folder, f"{case}.npy", header)
    refused(load(server, folder, "load_npy", path), pattern, path)


def test_npz_given_as_npy(server, folder):
    np.savez(folder / "arrays.npz", x=np.zeros(3))
    path = folder / "x.npy"
    path.write_bytes((folder / "arrays.npz").read_bytes())
    refused(load(server, folder, "load_npy", path), "is a zip archive.*np.save, not np.savez", path)


# ---- the command line: one line, exit status 2, no traceback --------------------------------------
def test_cli_reports_each_hostile_file_in_one_line(server, folder):
    model = H.model_file(folder)
    np.save(folder / "x.npy", np.zeros((2, 3), np.float32))
    virtual = _edited(H.model_file(folder, "v.h5"), "weights/dense/kernel", "virtual", folder)
    cli_refused(load(server, folder, "cli", "predict", virtual, "--input", folder / "x.npy"), "virtual dataset",
                virtual)
    for case in ("huge-shape", "code"):
        npy = H.npy_with_header(folder, f"{case}.npy", NPY[case][0])
        cli_refused(load(server, folder, "cli", "predict", model, "--input", npy), NPY[case][1], npy)
    fifo = H.fifo(folder, "f.h5")
    cli_refused(load(server, folder, "cli", "evaluate", fifo), "not a regular file", fifo)
    data = _edited(H.data_file(folder, "ext.h5"), "x", "external-link", folder)
    cli_refused(load(server, folder, "cli", "train", "--data", data, "--epochs", "1", "--validation-size", "10",
                     "--output", folder / "out.h5"), "external link", data)
    result = load(server, folder, "cli", "--debug", "predict", virtual, "--input", folder / "x.npy")
    refused(result, "virtual dataset", virtual, "ModelFileError")  # --debug: the exception itself


@pytest.mark.parametrize("labels,classes,pattern", [
    ([0, 1, 2**31 - 1], None, "the largest label is 2147483647"),
    ([0, 1, 2], 2**31, "y@classes is 2147483648, expected an integer in \\[2, 65536\\]")])
def test_cli_train_refuses_absurd_class_counts(server, folder, labels, classes, pattern):
    data = H.data_file(folder, labels=np.resize(labels, 60), classes=classes)
    result = load(server, folder, "cli", "train", "--data", data, "--epochs", "1", "--validation-size", "10",
                  "--output", folder / "o.h5")
    cli_refused(result, pattern, data)


def test_cli_predict_label_out_of_range(server, folder):
    model = H.model_file(folder)
    labels = np.resize([0, 1], 60)
    labels[3] = 200
    data = H.data_file(folder, labels=labels, classes=None)
    result = load(server, folder, "cli", "predict", model, "--data", data)
    cli_refused(result, "labels range from 0 to 200; the model has 2 classes", data)


# ---- Keras' safe_mode: code in a file is refused either way --------------------------------------
@pytest.mark.parametrize("safe_mode", [True, False])
def test_a_lambda_layer_is_refused_in_either_safe_mode(folder, safe_mode):
    lam = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
           "config": {"name": "code", "function": {"class_name": "__lambda__", "config": {"code": "4wEAAA=="}}}}
    path = H.rezip(H.keras_zip(folder), config=lambda c: {**c, "config": {**c["config"],
                                                                          "layers": H.keras_layers(c) + [lam]}})
    with pytest.raises(mlp_gpu.io.ModelFileError, match="layer class 'Lambda' is not supported"):
        mlp_gpu.load_model(path, safe_mode=safe_mode)
    with pytest.raises(TypeError, match="safe_mode: expected True or False"):
        mlp_gpu.load_model(path, safe_mode="no")


def test_cli_evaluate_names_the_data_file_of_a_bad_label(server, folder):
    model = H.model_file(folder)
    labels = np.resize([0, 1], 60)
    labels[5] = -3
    data = H.data_file(folder, labels=labels, classes=None)
    result = load(server, folder, "cli", "evaluate", model, "--data", data)
    cli_refused(result, "class labels must lie in \\[0, 1\\]", data)
