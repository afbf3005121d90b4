"""Where fit, evaluate and predict read their rows from, and in which order.

Three kinds of source, one protocol (``bind``, ``part_sizes``, ``read``):

- :class:`ArraySource`: arrays in memory, checked once up front (the resident case).
- :class:`ChunkedSource`: row-addressable arrays that stay on disk, NumPy memmaps and h5py datasets
  (x and y from one HDF5 file or two); a chunk of rows at a time is read into a buffer the caller owns.
- :class:`BatchSource`: a Keras ``PyDataset``-like object: ``len(ds)`` (or ``ds.num_batches``) batches,
  ``ds[i]`` returning ``(x, y)`` (or ``(x,)`` for predict); each batch is one part and one step.

:func:`as_source` picks one for what ``fit`` was given. Pass a source yourself to choose the chunk size
or to force a placement: ``model.fit(ChunkedSource(x, y, chunk_rows=8192, resident=False))``.

A source is cut into parts (row spans, or the batches of a BatchSource). An epoch visits the parts in a
permutation and the rows of each part in a permutation, both drawn from (seed, epoch): :func:`epoch_order`.
"""
from __future__ import annotations

import os

import numpy as np


# ---- the HDF5 data layout (mlp-gpu convert / train --data FILE.h5) ---------------------------------
def write_hdf5(path, x, y, test=None, attrs=None, chunk_rows=1024):
    """Write the data layout ``train --data FILE.h5`` reads: datasets ``x`` and ``y`` (the training rows)
    at the root and, with ``test=(x_test, y_test)``, a group ``test`` holding its own ``x`` and ``y``.

    Datasets are chunked by rows (``chunk_rows`` a chunk) and uncompressed, so a span of rows is one
    contiguous read. Written to a temporary name and renamed, so a failed write leaves no half file.
    """
    import h5py

    path = os.fspath(path)
    tmp = path + ".partial"
    with h5py.File(tmp, "w") as f:
        for group, pair in (("/", (x, y)), ("test", test)):
            if pair is None:
                continue
            gx, gy = pair
            node = f.require_group(group)
            for name, a in (("x", np.asarray(gx)), ("y", np.asarray(gy))):
                node.create_dataset(name, data=a, chunks=(min(chunk_rows, len(a)),) + a.shape[1:])
        f.attrs.update(attrs or {})
    os.replace(tmp, path)
    return path


def open_hdf5(path, group=None):
    """(x, y) h5py datasets of an HDF5 file holding ``x`` and ``y`` (in ``group`` if given); nothing is
    read. The file stays open while the datasets are in use. ``write_hdf5`` writes this layout."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{str(path)!r}: not a readable HDF5 file ({exc})") from None
    node = f if group is None else f.get(group)
    if not isinstance(node, h5py.Group) or not isinstance(node.get("x"), h5py.Dataset) \
            or not isinstance(node.get("y"), h5py.Dataset):
        names = sorted(f.keys())
        f.close()
        where = f"group {group!r} of " if group else ""
        raise ValueError(f"{where}{str(path)!r}: expected datasets 'x' and 'y' (the file holds {names})")
    return node["x"], node["y"]
