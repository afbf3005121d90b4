"""Data: the IDX reader and the Fashion-MNIST / MNIST files (``idx``), where fit reads its rows from
(``sources``, ``rows``, ``hdf5``) and whether they stay resident on the device or stream (``placement``)."""
from .idx import FASHION_CLASSES, IDXError, find_dataset, load_fashion_mnist, load_mnist, read_idx
from .sources import split_validation

__all__ = ["FASHION_CLASSES", "IDXError", "find_dataset", "load_fashion_mnist", "load_mnist", "read_idx",
           "split_validation"]
