"""``keras.models.clone_model``: a new model of the same layers and wiring, with fresh weights."""
from .functional import Model
from .sequential import Sequential


def clone_model(model, input_tensors=None, clone_function=None, **kwargs):
    """Keras' ``clone_model``: a new model of the same layers (same names and settings) with freshly drawn
    weights; copy them with ``clone.set_weights(model.get_weights())``. Only the plain form is supported."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a mlp_gpu Sequential or Model, got {type(model).__name__}")
    if input_tensors is not None or clone_function is not None or kwargs:
        raise ValueError("clone_model: only clone_model(model) is supported (no input_tensors, clone_function, "
                         f"{', '.join(kwargs) or 'call_function'})")
    if type(model) not in (Sequential, Model):
        raise TypeError(f"model: a subclassed model ({type(model).__name__}) cannot be cloned from its config; build "
                        "a new one and copy the weights with set_weights(model.get_weights())")
    config = model.get_config()
    graph = "input_layers" in config  # a graph of layers; a chain's config is a Sequential's
    return (Model if graph else Sequential).from_config(config, backend=model._backend_request)
