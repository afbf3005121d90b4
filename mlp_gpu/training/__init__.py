"""The fit / evaluate / predict loops (``fit``) over the training step and its runner (``steps``)."""
