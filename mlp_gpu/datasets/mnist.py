"""``load_data()`` as ``keras.datasets.mnist.load_data()``."""
from ..data.idx import load_mnist


def load_data(path=None):
    """``((x_train, y_train), (x_test, y_test))`` of the MNIST digits, uint8 as Keras returns them.

    ``path`` is a folder holding the IDX files (Keras' ``path`` names a cache file; ours is looked
    up in $MLP_GPU_DATA, the cache folder and /usr/share/datasets when it is None).
    """
    return load_mnist(path)
