"""Keras' ``keras.datasets`` loaders: ``mlp_gpu.datasets.fashion_mnist.load_data()``, ``mnist.load_data()``.

They read the IDX files already on this machine (see :func:`mlp_gpu.data.find_dataset`) and
return what Keras returns: uint8 images and labels. Nothing is downloaded.
"""
from . import fashion_mnist, mnist

__all__ = ["fashion_mnist", "mnist"]
