"""Tracing Python functions written with ``mlp_gpu.ops`` into graphs that run in place with NumPy or as
one generated CUDA kernel: ``graph`` (symbols, refusals), ``grad`` (reverse mode), ``evaluate``
(NumPy), ``cuda_source`` (the kernel), ``program`` (what a backend runs)."""
from .graph import Symbol, TraceError
from .program import Program, describe, function_name, trace_map, trace_rows

__all__ = ["Program", "Symbol", "TraceError", "describe", "function_name", "trace_map", "trace_rows"]
