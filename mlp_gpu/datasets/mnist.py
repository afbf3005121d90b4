"""``load_data(path="mnist.npz")`` as ``keras.datasets.mnist.load_data``."""
from pathlib import Path

from ..data.idx import load_mnist
from .cache import keras_datasets, read_npz

KERAS_NAME = "mnist.npz"


def load_data(path=KERAS_NAME):
    """``((x_train, y_train), (x_test, y_test))`` of the MNIST digits, uint8 as Keras returns them.

    As in Keras, ``path`` names Keras' ``mnist.npz``: absolute, or under Keras' download folder
    (~/.keras/datasets). A folder is read as the four IDX files (mlp_gpu's own layout). With the default,
    the IDX files are looked for in $MLP_GPU_DATA, the cache folder and /usr/share/datasets, then Keras'
    ~/.keras/datasets/mnist.npz. A missing file is an error that names every place looked in.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"mnist.load_data(path): expected a file name or path, got {type(path).__name__}")
    given = Path(path).expanduser()
    if given.is_dir():
        return load_mnist(given)
    npz = given if given.is_absolute() else keras_datasets() / given
    if str(path) != KERAS_NAME:
        if not npz.is_file():
            raise FileNotFoundError(f"mnist.load_data(path={str(path)!r}): no such file {npz} (nor a folder of IDX "
                                    "files); nothing is downloaded")
        return read_npz(npz)
    try:
        return load_mnist()
    except FileNotFoundError as exc:
        if npz.is_file():
            return read_npz(npz)
        raise FileNotFoundError(f"{exc}; nor Keras' {npz}") from None
