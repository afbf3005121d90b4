"""The routes of a captured training step: one vocabulary, chosen in one place.

A route is what runs inside the CUDA graph: which step is captured, which GEMM it calls during capture,
and which node plan (step_plan.py) describes it. ``choose`` starts from the route the user asked for
(``gemm=`` / MLP_GPU_GEMM) and walks down the fallback order, saying why it passed over each route that
cannot run here; ``backend.route`` then names the one that ran. Adding a route is one class here.

    lt           the fused cuBLASLt step (fused_step.py): bias, ReLU and SGD inside the GEMMs
    cublas       the general step, GEMMs by cuBLAS through nvmath-python's bindings (capturable)
    cupy-cublas  the general step, GEMMs by CuPy's own cuBLAS, where it can be captured (checked once)
    kernel       the general step, GEMMs by our sgemm_strided kernel: always possible
"""
from __future__ import annotations

from . import vendor_gemm
from .fused_step import FusedStep

GEMMS = ("auto", "kernel", "cublas", "lt")  # what gemm= may ask for


class RouteUnavailable(Exception):
    """This route cannot run the step here; the message says why."""


class Route:
    name: str
    plan: str            # the step_plan route whose nodes this one launches
    capture_gemm: str    # the GEMM the backend calls while capturing ("kernel", "cublas", "nvmath")
    fallback: str | None  # the route to try when this one cannot run

    def build(self, backend, step, rows, model, data, acc):
        """The step to capture on this route, or RouteUnavailable saying why not."""
        return step


class LtRoute(Route):
    name, plan, capture_gemm, fallback = "lt", "lt", "cublas", "cublas"

    def build(self, backend, step, rows, model, data, acc):
        why = vendor_gemm.unavailable_reason()
        if why is None and model is None:
            why = "the caller passed no model and data to build the fused step from"
        if why is not None:
            raise RouteUnavailable(why)
        try:
            return FusedStep(backend, model, data, acc, rows)
        except Exception as exc:  # the model does not fit, no algorithm, a library that will not load
            raise RouteUnavailable(f"{type(exc).__name__}: {exc}") from None


class CublasRoute(Route):
    name, plan, capture_gemm, fallback = "cublas", "cublas", "nvmath", "cupy-cublas"

    def build(self, backend, step, rows, model, data, acc):
        why = vendor_gemm.unavailable_reason()
        if why is None:
            try:
                backend.vendor_gemm()
            except Exception as exc:  # e.g. nvmath imports but libcublas will not load
                why = f"{type(exc).__name__}: {exc}"
        if why is not None:
            raise RouteUnavailable(why)
        return step


class CupyCublasRoute(Route):
    name, plan, capture_gemm, fallback = "cupy-cublas", "cublas", "cublas", "kernel"

    def build(self, backend, step, rows, model, data, acc):
        ok, why = backend.cupy_cublas_captures()
        if not ok:
            raise RouteUnavailable(why)
        return step


class KernelRoute(Route):
    name, plan, capture_gemm, fallback = "kernel", "kernel", "kernel", None


ROUTES = {route.name: route for route in (LtRoute(), CublasRoute(), CupyCublasRoute(), KernelRoute())}
LABELS = {"lt": "the fused cuBLASLt step", "cublas": "cuBLAS through nvmath-python",
          "cupy-cublas": "CuPy's cuBLAS", "kernel": "our sgemm_strided kernel"}


def first_route(gemm: str) -> str:
    """The route ``gemm=`` starts from: "auto" takes lt where nvmath-python imports (fastest at every shape
    measured on an H200, benchmarks/results/graph-routes.md), else the best capturable general step."""
    if gemm == "auto":
        return "lt" if vendor_gemm.unavailable_reason() is None else "cupy-cublas"
    return gemm


def choose(backend, gemm, step, rows, model=None, data=None, acc=None):
    """(route, why, the step to capture): the first route from ``gemm`` down the fallback order that can run."""
    notes, name = [], first_route(gemm)
    while True:
        route = ROUTES[name]
        try:
            body = route.build(backend, step, rows, model, data, acc)
        except RouteUnavailable as exc:
            if route.fallback is None:
                raise
            notes.append(f"{route.name} route not taken: {exc}")
            name = route.fallback
            continue
        return route, "; ".join(notes + [f"gemm={gemm!r}: {LABELS[route.name]}"]), body
