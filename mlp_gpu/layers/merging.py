"""Merge layers (Keras' ``keras.layers.merging``): several inputs, one output, no weights.

Each takes a list of (rows, features) batches. ``forward(backend, xs, out, ...)`` and
``backward(backend, xs, y, dy, dxs, ...)`` are the list forms of the Layer protocol: ``dxs`` holds one
buffer per input (None where no gradient is wanted); dy is only read. Written once against
``backend.xp``, so both backends run them.
"""
from __future__ import annotations

from .base import Layer


class _Merge(Layer):
    """Keras' base merge layer: equal input shapes (no broadcasting here), the output has that shape."""

    _abstract = True  # not a layer of its own: no file names it
    merges = True
    min_inputs = 1

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def output_shape(self, input_shapes):
        what = f"{type(self).__name__} layer {self.name!r}" if self.name else f"{type(self).__name__} layer"
        if not isinstance(input_shapes, list) or not input_shapes or not isinstance(input_shapes[0], tuple):
            raise ValueError(f"{what}: a merge layer should be called on a list of inputs, got {input_shapes!r}")
        if len(input_shapes) < self.min_inputs:
            raise ValueError(f"{what}: expected at least {self.min_inputs} inputs, got {len(input_shapes)}")
        return self._merged_shape(what, input_shapes)

    def _merged_shape(self, what, shapes):
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{what}: inputs must have the same shape (mlp_gpu does not broadcast), got "
                             f"{[(None,) + s for s in shapes]}")
        return shapes[0]

    def get_config(self) -> dict:
        return {k: v for k, v in super().get_config().items() if k != "input_shape"}  # never a first layer

    fold = None  # the element-wise xp function (by name) that folds the inputs left to right

    def forward(self, backend, xs, out, training=False, aux=None) -> None:
        xp = backend.xp
        op = getattr(xp, self.fold)
        xp.copyto(out, xs[0])
        for x in xs[1:]:
            op(out, x, out=out)


class Add(_Merge):
    """``x1 + x2 + ...``"""

    fold = "add"

    def backward(self, backend, xs, y, dy, dxs, aux=None) -> None:
        for dx in dxs:
            if dx is not None:
                backend.xp.copyto(dx, dy)


class Subtract(_Merge):
    """``x1 - x2``: exactly two inputs, as in Keras."""

    min_inputs = 2

    def _merged_shape(self, what, shapes):
        if len(shapes) != 2:
            raise ValueError(f"{what}: a Subtract layer should be called on exactly 2 inputs, got {len(shapes)}")
        return super()._merged_shape(what, shapes)

    def forward(self, backend, xs, out, training=False, aux=None) -> None:
        backend.xp.subtract(xs[0], xs[1], out=out)

    def backward(self, backend, xs, y, dy, dxs, aux=None) -> None:
        if dxs[0] is not None:
            backend.xp.copyto(dxs[0], dy)
        if dxs[1] is not None:
            backend.xp.negative(dy, out=dxs[1])


class Multiply(_Merge):
    """``x1 * x2 * ...`` element-wise."""

    fold = "multiply"

    def backward(self, backend, xs, y, dy, dxs, aux=None) -> None:
        xp = backend.xp
        for i, dx in enumerate(dxs):
            if dx is None:
                continue
            xp.copyto(dx, dy)  # the product of the others, not y / x_i: x_i may be 0
            for j, x in enumerate(xs):
                if j != i:
                    xp.multiply(dx, x, out=dx)


class Average(_Merge):
    """``(x1 + ... + xn) / n``"""

    fold = "add"

    def forward(self, backend, xs, out, training=False, aux=None) -> None:
        super().forward(backend, xs, out)
        out *= 1.0 / len(xs)

    def backward(self, backend, xs, y, dy, dxs, aux=None) -> None:
        for dx in dxs:
            if dx is not None:
                backend.xp.multiply(dy, 1.0 / len(xs), out=dx)


class _Extremum(_Merge):
    """The element-wise maximum or minimum; the gradient goes to the first input holding it (on ties
    too, where torch would split it)."""

    _abstract = True

    def buffers(self) -> dict:
        return {"hit": (self.shape_out, True), "taken": (self.shape_out, True)}  # 0/1 masks, preallocated

    def backward(self, backend, xs, y, dy, dxs, aux=None) -> None:
        xp = backend.xp
        hit, taken = aux["hit"], aux["taken"]
        taken.fill(0)
        for x, dx in zip(xs, dxs):
            xp.equal(x, y, out=hit)  # where this input holds the extremum ...
            xp.subtract(hit, taken, out=hit)
            xp.maximum(hit, 0, out=hit)  # ... and no earlier input took it
            xp.add(taken, hit, out=taken)
            if dx is not None:
                xp.multiply(dy, hit, out=dx)


class Maximum(_Extremum):
    """The element-wise maximum of the inputs."""

    fold = "maximum"


class Minimum(_Extremum):
    """The element-wise minimum of the inputs."""

    fold = "minimum"


class Concatenate(_Merge):
    """The inputs side by side along the feature axis: ``axis=-1`` (or 1: samples here are flat)."""

    config_keys = Layer.config_keys | {"axis"}

    def __init__(self, axis=-1, **kwargs):
        if isinstance(axis, bool) or axis not in (-1, 1):
            raise ValueError(f"Concatenate(axis): only the feature axis (-1 or 1) of flat samples, got {axis!r}")
        super().__init__(**kwargs)
        self.axis = axis

    def _merged_shape(self, what, shapes):
        if any(len(s) != 1 for s in shapes):
            raise ValueError(f"{what}: concatenates flat samples (rows, features); got "
                             f"{[(None,) + s for s in shapes]}; put a Flatten() before it")
        widths = [s[0] for s in shapes]
        self._cuts = [sum(widths[:i]) for i in range(len(widths) + 1)]
        return (self._cuts[-1],)

    def forward(self, backend, xs, out, training=False, aux=None) -> None:
        for x, a, b in zip(xs, self._cuts, self._cuts[1:]):
            out[:, a:b] = x

    def backward(self, backend, xs, y, dy, dxs, aux=None) -> None:
        for dx, a, b in zip(dxs, self._cuts, self._cuts[1:]):
            if dx is not None:
                backend.xp.copyto(dx, dy[:, a:b])

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


def _helper(cls):
    """Keras' lowercase functional form of a merge layer: ``add([x1, x2])`` is ``Add()([x1, x2])``."""
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)
    merge.__name__ = merge.__qualname__ = cls.__name__.lower()
    merge.__doc__ = f"``{merge.__name__}(inputs, **kwargs)`` is ``{cls.__name__}(**kwargs)(inputs)``."
    return merge


add, subtract, multiply, average, maximum, minimum = map(_helper, (Add, Subtract, Multiply, Average, Maximum,
                                                                   Minimum))


def concatenate(inputs, axis=-1, **kwargs):
    """``concatenate(inputs, axis=-1, **kwargs)`` is ``Concatenate(axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


MERGE_LAYERS = {cls.__name__: cls for cls in (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate)}
