"""Reverse-mode differentiation of a recorded graph, into more graph.

``vjp(output, seed, wrt)`` returns a Symbol for d(sum(seed * output))/d(wrt): the adjoints are
ordinary nodes, so the NumPy evaluator and the CUDA generator run forward and backward as one graph.
Tie rules follow the torch backend Keras runs on (``maximum``/``minimum`` split a tie in halves,
``max``/``min`` share the gradient among equal maxima, ``abs``' gradient at 0 is 0, ``clip`` passes
it on the closed interval).
"""
from __future__ import annotations

from .graph import REDUCTIONS, Symbol, apply, constant, reduce, topological

_NO_GRAD = {"sign", "greater", "greater_equal", "less", "less_equal", "equal", "not_equal", "logical_and",
            "logical_or", "logical_not", "const", "input", "param"}


def _tie(a, b, op):
    """1 where a wins, 1/2 on a tie, 0 where b wins."""
    return apply("where", apply(op, a, b), 1.0, apply("where", apply("equal", a, b), 0.5, 0.0))


def _expand(g, node):
    """The adjoint of a reduction's output, shaped to broadcast over the reduced row."""
    return g if node.attrs["keepdims"] else Symbol("expand", (g,), g.shape + (1,))


def _rules(node: Symbol, g: Symbol) -> list:
    """The adjoint of each argument of ``node`` given the adjoint ``g`` of its output (None: no gradient)."""
    op, a = node.op, node.args
    mul, div = (lambda x, y: apply("multiply", x, y)), (lambda x, y: apply("divide", x, y))
    if op == "add":
        return [g, g]
    if op == "subtract":
        return [g, apply("negative", g)]
    if op == "multiply":
        return [mul(g, a[1]), mul(g, a[0])]
    if op == "divide":
        return [div(g, a[1]), apply("negative", div(mul(g, node), a[1]))]
    if op == "power":
        base = mul(g, mul(a[1], apply("power", a[0], apply("subtract", a[1], 1.0))))
        return [base, None if a[1].op == "const" else mul(g, mul(node, apply("log", a[0])))]
    if op in ("maximum", "minimum"):
        cmp = "greater" if op == "maximum" else "less"
        return [mul(g, _tie(a[0], a[1], cmp)), mul(g, _tie(a[1], a[0], cmp))]
    unary = {"abs": lambda: apply("sign", a[0]), "square": lambda: mul(a[0], 2.0),
             "sqrt": lambda: div(0.5, node), "exp": lambda: node, "log": lambda: div(1.0, a[0]),
             "log1p": lambda: div(1.0, apply("add", a[0], 1.0)),
             "tanh": lambda: apply("subtract", 1.0, mul(node, node)),
             "sigmoid": lambda: mul(node, apply("subtract", 1.0, node)), "softplus": lambda: apply("sigmoid", a[0]),
             "relu": lambda: apply("greater", a[0], 0.0), "negative": lambda: constant(-1.0),
             "cast": lambda: constant(1.0)}
    if op in unary:
        return [mul(g, unary[op]())]
    if op == "where":
        return [None, apply("where", a[0], g, 0.0), apply("where", a[0], 0.0, g)]
    if op == "clip":
        inside = apply("logical_and", apply("greater_equal", a[0], a[1]), apply("less_equal", a[0], a[2]))
        return [apply("where", inside, g, 0.0), apply("where", apply("less", a[0], a[1]), g, 0.0),
                apply("where", apply("greater", a[0], a[2]), g, 0.0)]
    if op in REDUCTIONS:
        ge = _expand(g, node)
        if op == "sum":
            return [ge]
        if op == "mean":
            return [mul(ge, 1.0 / node.attrs["cols"])]
        mask = apply("cast", apply("equal", a[0], _expand(node, node)))
        return [mul(ge, div(mask, reduce("sum", mask, -1, True)))]
    if op == "expand":
        return [reduce("sum", g, -1, False)]
    if op == "bcast":
        return [g]  # _fit sums it back to the argument's shape
    raise AssertionError(f"no gradient rule for {op!r}")


def _fit(g: Symbol, shape: tuple):
    """The adjoint g made exactly ``shape``: summed over the axes broadcasting stretched, or stretched
    itself (``bcast``) when a rule left it smaller, so that every later sum counts each element."""
    if g.shape == shape:
        return g
    if shape == ():
        return None  # a constant
    if len(g.shape) < len(shape) or (len(g.shape) == len(shape) and g.shape[-1] == 1):
        return Symbol("bcast", (g,), shape)
    if len(shape) == len(g.shape) and shape[-1] == 1:
        return reduce("sum", g, -1, True)
    raise AssertionError(f"cannot fit an adjoint of shape {g.shape} to {shape}")


def vjp(output: Symbol, seed: Symbol, wrt: Symbol) -> Symbol:
    """d(sum(seed * output))/d(wrt) as a Symbol of wrt's shape; ``seed`` broadcasts against ``output``."""
    order = topological([output])
    needs = {wrt.id}
    for node in order:
        if any(a.id in needs for a in node.args):
            needs.add(node.id)
    if output.id not in needs:
        return Symbol("bcast", (constant(0.0),), wrt.shape)
    adjoint = {output.id: _fit(seed, output.shape)}
    for node in reversed(order):
        g = adjoint.pop(node.id, None)
        if node is wrt:
            return g
        if g is None or node.op in _NO_GRAD or node.id not in needs:
            continue
        for arg, ga in zip(node.args, _rules(node, g)):
            if ga is None or arg.id not in needs:
                continue
            ga = _fit(ga, arg.shape)
            if ga is not None:
                adjoint[arg.id] = apply("add", adjoint[arg.id], ga) if arg.id in adjoint else ga
    raise AssertionError("the input was not reached")
