# ruff: noqa: E501 - one entry per line, reasons in full
"""What ``test_surface`` accepts today: names of Keras 3 that mlp_gpu lacks and signatures that
differ, each with its reason; an entry that comes right must leave (the test says so). Written by
``python -m tests.keras.surface --write``, which keeps the reasons; edit a reason by hand."""
FLOOR = {'names': 266, 'exist': 264, 'compared': 243, 'match': 237}

MISSING = {
    'Model().inputs': "not yet Keras' (issue #25): a Sequential holds no symbolic tensors here (a functional Model's graph does)",
    'Model().outputs': "not yet Keras' (issue #25): a Sequential holds no symbolic tensors here (a functional Model's graph does)",
}

DIFFERENT = {
    'models.Sequential': "Keras' (layers, trainable, name), then our keyword-only backend and dtype (docs/keras.md: where we differ)",
    'models.load_model': "Keras' parameters, then our backend= (docs/keras.md: where we differ)",
    'Sequential': "Keras' (layers, trainable, name), then our keyword-only backend and dtype (docs/keras.md: where we differ)",
    'Variable': "ours is a view of one weight in the model's flat buffer, made by the model (layer.weights), not built by users",
    'Model.compile': "Keras' parameters in Keras' order, then our keyword-only seed (docs/keras.md: where we differ)",
    'Model.fit': "Keras' parameters in Keras' order, then our seed, on_nan and distribute (docs/keras.md: where we differ)",
}
