"""``load_data()`` as ``keras.datasets.fashion_mnist.load_data()``."""
from ..data.idx import find_dataset, load_fashion_mnist
from .cache import keras_datasets


def load_data():
    """``((x_train, y_train), (x_test, y_test))``: (60000, 28, 28) and (10000, 28, 28) uint8 images, uint8 labels.

    Read from the IDX files on this machine (Keras downloads them instead): in $MLP_GPU_DATA, the cache folder,
    /usr/share/datasets (the Debian package dataset-fashion-mnist), then Keras' own download folder
    (~/.keras/datasets/fashion-mnist). A missing file is an error that names every place looked in.
    """
    try:
        find_dataset("fashion-mnist")
    except FileNotFoundError as exc:
        keras_copy = keras_datasets() / "fashion-mnist"
        try:
            find_dataset("fashion-mnist", keras_copy)
        except FileNotFoundError:
            raise FileNotFoundError(f"{exc}; nor in Keras' download folder {keras_copy}") from None
        return load_fashion_mnist(keras_copy)
    return load_fashion_mnist()
