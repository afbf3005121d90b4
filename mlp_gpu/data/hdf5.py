"""HDF5 data sets for fit: ``write_hdf5`` (what ``mlp-gpu convert`` writes) and ``open_hdf5``, which opens one
through the guarded reader (io/safe_h5.py) and returns its x and y datasets, checked."""
from __future__ import annotations

import os

import numpy as np

from ..io.safe_h5 import open_guard


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
    read. The file stays open while the datasets are in use. ``write_hdf5`` writes this layout.

    The file goes through the guarded reader (io/safe_h5.py) first: a FIFO, an external link, a
    virtual or externally stored dataset, a missing filter or a dataset declaring far more rows than
    the file stores is a ValueError naming the file and the object."""
    guard = open_guard(path, error=ValueError, what="a readable HDF5 file")
    try:
        node = guard.file if group is None else guard.group(group, required=False)
        if node is None or not all(k in node for k in ("x", "y")):
            where = f"group {group!r} of " if group else ""
            raise ValueError(f"{where}{str(path)!r}: expected datasets 'x' and 'y' (the file holds "
                             f"{sorted(guard.file.keys())})")
        return guard.dataset("x", node), guard.dataset("y", node)
    except BaseException:
        guard.file.close()
        raise
