"""``keras.models.clone_model``: a new model of the same layers and wiring, with fresh weights."""
from .functional import Model
from .sequential import Sequential


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False, **kwargs):
    """Keras' ``clone_model``: a new model of the same layers (same names and settings) with freshly drawn
    weights; copy them with ``clone.set_weights(model.get_weights())``. Only the plain form is supported;
    ``recursive`` changes nothing here (models do not nest)."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a mlp_gpu Sequential or Model, got {type(model).__name__}")
    if not isinstance(recursive, bool):
        raise TypeError(f"clone_model(recursive): expected True or False, got {recursive!r}")
    given = [name for name, value in (("input_tensors", input_tensors), ("clone_function", clone_function),
                                      ("call_function", call_function)) if value is not None] + list(kwargs)
    if given:
        raise ValueError(f"clone_model: only clone_model(model) is supported, got {', '.join(given)}")
    if type(model) not in (Sequential, Model):
        raise TypeError(f"model: a subclassed model ({type(model).__name__}) cannot be cloned from its config; build "
                        "a new one and copy the weights with set_weights(model.get_weights())")
    config = model.get_config()
    graph = "input_layers" in config  # a graph of layers; a chain's config is a Sequential's
    return (Model if graph else Sequential).from_config(config, backend=model._backend_request)
