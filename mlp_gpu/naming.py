"""Keras' names for classes: the one snake-case rule every default name and weight-file group uses."""
import re


def snake_case(name: str) -> str:
    """Keras' ``to_snake_case`` (keras/src/utils/naming.py): "PReLU" -> "p_re_lu", "RMSprop" -> "rm_sprop",
    "BatchNormalization" -> "batch_normalization"."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
