"""``load_data()`` as ``keras.datasets.fashion_mnist.load_data()``."""
from ..data.idx import load_fashion_mnist


def load_data(path=None):
    """``((x_train, y_train), (x_test, y_test))``: (60000, 28, 28) and (10000, 28, 28) uint8 images, uint8 labels.

    ``path`` is a folder holding the IDX files (Keras downloads instead; we look in $MLP_GPU_DATA,
    the cache folder and /usr/share/datasets when it is None).
    """
    return load_fashion_mnist(path)
