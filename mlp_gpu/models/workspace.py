"""A model's per-batch scratch: each layer's output, gradient and buffers for a batch of a given size,
made once per size so that no step allocates."""
from __future__ import annotations


import numpy as np


class Workspace:
    """Preallocated per-batch buffers: the input, the targets, each computing layer's output and
    gradient, and the scratch each layer asks for (``Layer.buffers``).

    ``view(n)`` gives the first n rows of the same memory, for the last, shorter batch.
    """

    def __init__(self, backend, rows, in_dim, layers, target_shape, target_dtype, dtype=np.float32, _views=None):
        if _views is not None:
            self.x, self.y, self.a, self.dz, self.aux, self._per_row = _views
        else:
            self.x = backend.empty((rows, in_dim), dtype)
            self.y = backend.empty((rows,) + target_shape, target_dtype)
            # flat (rows, features), as the graph workspace: a layer over a sample's several axes
            # (LayerNormalization(axis=1)) reads its shape_out, and a Dense after Flatten gets a 2-D batch
            flat = [int(np.prod(layer.shape_out)) for layer in layers]
            self.a = [backend.empty((rows, n), dtype) for n in flat]
            self.dz = [backend.empty((rows, n), dtype) for n in flat]
            self.aux, self._per_row = [], []
            for layer in layers:
                spec = layer.buffers()
                self.aux.append({k: backend.empty(((rows,) if per_row else ()) + tuple(shape), dtype)
                                 for k, (shape, per_row) in spec.items()})
                self._per_row.append({k for k, (_, per_row) in spec.items() if per_row})
        self.rows = rows

    def view(self, n: int) -> "Workspace":
        aux = [{k: (v[:n] if k in rows else v) for k, v in bufs.items()} for bufs, rows in zip(self.aux, self._per_row)]
        views = (self.x[:n], self.y[:n], [a[:n] for a in self.a], [d[:n] for d in self.dz], aux, self._per_row)
        return Workspace(None, n, None, None, None, None, _views=views)
