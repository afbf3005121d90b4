"""The registries agree with each other and with what they feed: every layer class has its Keras file form
both ways and its ONNX export (or is listed here as not exported, with why), every optimizer is reachable by
its Keras name, and the README's lists name what the registries hold."""
import re
from pathlib import Path

import pytest

import mlp_gpu
from mlp_gpu import activations, optimizers
from mlp_gpu.io import keras_zip, onnx
from mlp_gpu.layers.base import LAYER_CLASSES

ROOT = Path(__file__).resolve().parents[1]
# Layer classes a Keras file writes or reads in another form: Input is the InputLayer entry of the config.
KERAS_FORM = {"Input": "written as the config's InputLayer", "InputLayer": "written as the config's InputLayer",
              "Lambda": "not in .keras files: Keras stores its bytecode there (our .h5 stores its name)"}


@pytest.mark.parametrize("name", sorted(LAYER_CLASSES))
def test_every_layer_has_its_file_forms(name):
    assert name in onnx.EXPORTERS, f"{name}: no ONNX exporter (io/onnx.py @exporter)"
    if name not in KERAS_FORM:
        assert name in keras_zip.TO_KERAS, f"{name}: no .keras writer (io/keras_zip.TO_KERAS)"
    if name not in ("Input", "Lambda"):
        assert name in keras_zip.FROM_KERAS, f"{name}: no .keras reader (io/keras_zip.FROM_KERAS)"


def test_every_layer_is_public_and_registered():
    public = {n for n in mlp_gpu.layers.__all__ if isinstance(getattr(mlp_gpu.layers, n), type)
              and issubclass(getattr(mlp_gpu.layers, n), mlp_gpu.layers.Layer)}
    assert public - {"Layer"} == set(LAYER_CLASSES)
    for name, cls in LAYER_CLASSES.items():
        assert getattr(mlp_gpu.layers, name) is cls


@pytest.mark.parametrize("name", sorted(optimizers.OPTIMIZERS))
def test_every_optimizer_is_found_by_its_keras_name(name):
    cls = optimizers.OPTIMIZERS[name]
    assert isinstance(optimizers.get(name), cls)
    assert getattr(optimizers, cls.__name__) is cls
    assert optimizers.from_config(optimizers.get(name).get_config()).get_config() == optimizers.get(name).get_config()


def test_the_readme_lists_what_the_registries_hold():
    """Each activation and optimizer is named in the docs a user reads."""
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    missing = [a for a in activations.ACTIVATIONS if not re.search(rf"\b{a}\b", text)]
    missing += [cls.__name__ for cls in optimizers.OPTIMIZERS.values() if cls.__name__ not in text]
    assert not missing, f"not in README.md or docs/: {missing}"
