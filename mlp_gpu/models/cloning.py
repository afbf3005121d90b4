"""``keras.models``: ``mlp_gpu.models.Sequential``, ``load_model`` and ``clone_model``."""
from .sequential import Sequential


def clone_model(model, input_tensors=None, clone_function=None, **kwargs):
    """Keras' ``clone_model``: a new model of the same layers (same names and settings) with freshly drawn
    weights; copy them with ``clone.set_weights(model.get_weights())``. Only the plain form is supported."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a mlp_gpu Sequential, got {type(model).__name__}")
    if input_tensors is not None or clone_function is not None or kwargs:
        raise ValueError("clone_model: only clone_model(model) is supported (no input_tensors, clone_function, "
                         f"{', '.join(kwargs) or 'call_function'})")
    return Sequential.from_config(model.get_config(), backend=model._backend_request)
