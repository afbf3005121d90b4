"""A layer in several models, as Keras allows (Géron's ``Sequential(model_A.layers[:-1] + [Dense(1)])``):
its weights are one set, so training one model changes the other's shared layers.

Each model keeps its own flat buffers (one optimizer launch, one graph per model), and a layer's views
point into the buffers of the model that used it last. A model about to read or train its weights first
takes its shared layers back (``claim``): it copies their current values (from the other model's buffer)
into its own and points the layers at its own views again. Values thus follow the layer, whichever
model touched it last, exactly as one set of weights would; optimizer state stays per model, as in
Keras, where each model's optimizer keeps its own slots.
"""
from __future__ import annotations

import weakref


def _owner(layer):
    ref = getattr(layer, "_owner", None)
    return ref() if ref is not None else None


def held_elsewhere(layer, model) -> list | None:
    """The views (params then state) of a built layer that another model holds, else None."""
    if _owner(layer) is model or getattr(layer, "params", None) is None:
        return None
    views = list(layer.params) + list(layer.state)
    return views or None


def copy_in(backend, layer, source: list, target: list, model_name: str) -> None:
    """target views <- source views (a shared layer's current values), checking they are alike."""
    shapes = [tuple(v.shape) for v in source], [tuple(v.shape) for v in target]
    if shapes[0] != shapes[1]:
        raise ValueError(f"layer {layer.name!r} is shared with another model, where its weights have shapes "
                         f"{shapes[0]}; in model {model_name!r} it would need {shapes[1]} (a shared layer "
                         "needs the same input width in every model)")
    same = getattr(layer, "backend", None) is backend
    for src, dst in zip(source, target):
        if same:
            backend.xp.copyto(dst, src.astype(dst.dtype, copy=False))
        else:
            dst[...] = backend.asarray(layer.backend.to_host(src), dst.dtype)


def bind(model, layer) -> None:
    """Point the layer at this model's views of it."""
    params, grads, state = model._bindings[id(layer)]
    layer.bind(model.backend, params, grads, state)
    layer._param_range = model._ranges[id(layer)]  # a layer used twice in a graph sums its gradients here
    if getattr(layer, "uses_rng", False):
        layer.attach_rng(None, model.rng_counter)  # its key stays; the counter is this model's
    layer._owner = weakref.ref(model)
    if getattr(layer, "_models", None) is None:
        layer._models = weakref.WeakSet()
    layer._models.add(model)


def shared_layers(model) -> list[str]:
    """Names of the model's layers that another live, built model holds views of too."""
    return [layer.name for layer in model.compute_layers
            if any(other is not model for other in getattr(layer, "_models", ()))]


def claim(model) -> None:
    """Take back the model's layers that another model used since: their current values, then the views."""
    for layer in model.compute_layers:
        if _owner(layer) is model:
            continue
        held = held_elsewhere(layer, model)
        if held is not None:
            params, _, state = model._bindings[id(layer)]
            copy_in(model.backend, layer, held, list(params) + list(state), model.name)
        bind(model, layer)
