"""Every example in README.md and docs/ runs as written: each Python block in a fresh process, each page's
`mlp-gpu` commands in order in one folder, all on a few thousand rows and one epoch
(MLP_GPU_EXAMPLE_ROWS and MLP_GPU_EXAMPLE_EPOCHS, which the dataset loaders and fit honour)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential
from mlp_gpu.cli import build_parser
from mlp_gpu.data import find_dataset, load_fashion_mnist
from mlp_gpu.utils import EXAMPLE_EPOCHS, EXAMPLE_ROWS

from .conftest import blobs

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Enough rows for split_validation(..., 5000) to leave rows to train on; one epoch each.
SMALL = {EXAMPLE_ROWS: "6000", EXAMPLE_EPOCHS: "1", "MPLBACKEND": "Agg"}
# Packages an example may use that only some installs have (the peers and the optional extras): an example
# that stops for want of one of these is skipped, saying so; any other failure fails the test.
OPTIONAL = {"torch", "keras", "tensorflow", "jax", "onnx", "onnxruntime", "sklearn", "tensorboardX", "matplotlib",
            "mpi4py", "pandas", "cupy"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _blocks(page: Path):
    """(language, first line number, code) of each fenced block of a page."""
    text = page.read_text()
    for m in FENCE.finditer(text):
        yield m.group(1), text[:m.start()].count("\n") + 2, m.group(2)


def _commands(code: str):
    """The `mlp-gpu ...` command lines of a console or sh block, as argument lists (comments dropped)."""
    for line in code.splitlines():
        line = line.strip().removeprefix("$ ")
        if line.startswith("mlp-gpu "):
            yield shlex.split(line, comments=True)[1:]


PYTHON = [pytest.param(page, code, id=f"{page.relative_to(ROOT)}:{line}")
          for page in PAGES for lang, line, code in _blocks(page) if lang == "python"]
CONSOLE = [pytest.param(page, cmds, id=str(page.relative_to(ROOT))) for page in PAGES
           if (cmds := [c for lang, _, code in _blocks(page) if lang in ("console", "sh") for c in _commands(code)])]


def _env():
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, **SMALL, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _skip_if_optional_missing(proc):
    missing = re.search(r"No module named '([\w.]+)'", proc.stderr)
    if missing and missing.group(1).split(".")[0] in OPTIONAL:
        pytest.skip(f"needs {missing.group(1)}, not installed here")
    extra = re.search(r"needs (\w+), which is not installed", proc.stderr)
    if proc.returncode == 2 and extra and extra.group(1) in OPTIONAL:
        pytest.skip(f"needs {extra.group(1)}, not installed here")


@pytest.fixture(scope="module", autouse=True)
def _fashion_mnist():
    try:
        find_dataset("fashion-mnist")
    except FileNotFoundError as exc:
        pytest.skip(f"the examples read Fashion-MNIST: {exc}")


def test_the_pages_have_examples():
    assert len(PYTHON) >= 10 and len(CONSOLE) >= 4
    for page in PAGES[1:]:
        first = next(_blocks(page), None)
        assert first is not None and first[0] in ("python", "console"), f"{page.name}: does not start with an example"
        assert page.read_text().lstrip().startswith("# ") and page.read_text().index("```") < 200, page.name


@pytest.mark.slow
@pytest.mark.parametrize("page, code", PYTHON)
def test_python_example_runs(page, code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        _skip_if_optional_missing(proc)
    assert proc.returncode == 0, f"{page.name}:\n{code}\n--- stderr:\n{proc.stderr[-4000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("page, commands", CONSOLE)
def test_command_examples_run(page, commands, tmp_path):
    for args in commands:  # in order, in one folder: a later command reads what an earlier one wrote
        proc = subprocess.run([sys.executable, "-m", "mlp_gpu.cli", *args], cwd=tmp_path, env=_env(),
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            _skip_if_optional_missing(proc)
        assert proc.returncode == 0, f"{page.name}: mlp-gpu {shlex.join(args)}\n--- stderr:\n{proc.stderr[-4000:]}"


def test_cli_page_documents_every_option():
    text = (ROOT / "docs" / "cli.md").read_text()
    for name, sub in build_parser().commands.items():
        assert f"## `mlp-gpu {name}`" in text
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in text, f"docs/cli.md: mlp-gpu {name} {option} is not documented"


def test_example_rows_caps_the_loaders(monkeypatch, caplog):
    monkeypatch.setenv(EXAMPLE_ROWS, "120")
    (x, y), (x_test, y_test) = load_fashion_mnist()
    assert x.shape == (120, 28, 28) and len(y) == 120 and len(x_test) == len(y_test) == 120
    assert f"{EXAMPLE_ROWS}=120" in caplog.text
    monkeypatch.setenv(EXAMPLE_ROWS, "many")
    with pytest.raises(ValueError, match=EXAMPLE_ROWS):
        load_fashion_mnist()


def test_example_epochs_caps_fit_and_says_so(monkeypatch, caplog):
    x, y = blobs()
    model = Sequential([Input((8,)), Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    monkeypatch.setenv(EXAMPLE_EPOCHS, "2")
    assert model.fit(x, y, epochs=5, verbose=0).epoch == [0, 1]
    assert f"{EXAMPLE_EPOCHS}=2: fit trains 2 of its 5 epochs" in caplog.text
    assert model.fit(x, y, epochs=5, initial_epoch=2, verbose=0).epoch == [2, 3]
    monkeypatch.setenv(EXAMPLE_EPOCHS, "0")
    with pytest.raises(ValueError, match=EXAMPLE_EPOCHS):
        model.fit(x, y, epochs=5, verbose=0)
    monkeypatch.delenv(EXAMPLE_EPOCHS)
    assert len(model.fit(x, y, epochs=3, verbose=0).epoch) == 3
    assert np.isfinite(model.evaluate(x, y))
