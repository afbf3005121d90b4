"""One epoch of single training steps over a device data set, in a fixed shuffled order: what the route
tests compare with the NumPy backend step by step (tests/backend/cuda/test_graph_routes.py,
test_persistent_step.py)."""
from __future__ import annotations

import numpy as np

from mlp_gpu import losses
from mlp_gpu.data.sources import check_inputs
from mlp_gpu.training.steps import DeviceData, train_step


def general_step(model, data, acc, rows):
    """The model's own step (gather, forward, loss, backward, update, advance) for batches of ``rows``."""
    ws = model.workspace(rows)
    return lambda: train_step(model, ws, data, acc)


def epoch_steps(model, x, y, batch, make_step=general_step, order_seed=3):
    """Run one epoch of ``batch``-row steps (the last one shorter), each made by make_step(model, data, acc,
    rows); yield (data, acc) after every step."""
    backend = model.backend
    x = check_inputs(model, x)
    data = DeviceData(backend, x, losses.check_targets(model.loss, y, len(x), model.output_units, model.dtype))
    data.perm[...] = backend.asarray(np.random.default_rng(order_seed).permutation(len(x)))
    acc = backend.zeros(3, np.float64)
    n = len(x)
    sizes = [batch] * (n // batch) + ([n % batch] if n % batch else [])
    steps = {rows: make_step(model, data, acc, rows) for rows in sorted(set(sizes))}
    for rows in sizes:
        steps[rows]()
        yield data, acc
