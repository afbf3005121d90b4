"""Replaying captured CUDA graphs: ``GraphRunner`` launches a graph of a block of steps, and counts its nodes."""
from __future__ import annotations


from ..base import StepRunner


class GraphRunner(StepRunner):
    """Replays, on the current stream, a graph of ``block`` steps and a graph of one step: ``count`` steps
    are count // block replays of the first and count % block of the second. Both are captured here,
    before the first epoch, so no capture happens inside the timed loop."""

    def __init__(self, backend, step, block, capture_gemm):
        super().__init__(step, block)
        self.graphs = {count: backend.capture(step, count, capture_gemm)[0] for count in {block, 1}}
        nodes = _graph_nodes(self.graphs[block])
        self.nodes_per_step = None if nodes is None else nodes / block  # as captured, where readable

    def __call__(self, count: int = 1) -> None:
        blocks, rest = divmod(count, self.block)
        for _ in range(blocks):
            self.graphs[self.block].launch()
        for _ in range(rest):
            self.graphs[1].launch()


def _graph_nodes(graph) -> int | None:
    """Nodes in a captured CuPy graph, read through cuda-bindings where both expose it; else None."""
    handle = getattr(graph, "graph", None)
    try:
        from cuda.bindings import runtime as cudart

        err, _, count = cudart.cudaGraphGetNodes(handle, 0)
        return int(count) if int(err) == 0 else None
    except Exception:  # no cuda-bindings, or a CuPy that hides the handle: the plan's count stands
        return None
