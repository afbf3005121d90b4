"""Models built the same way from Keras or mlp_gpu (``K`` is either module): Géron's chapter-10 graphs
and a residual MLP, with explicit layer names so weights can be matched by name."""


def wide_deep(K):
    input_ = K.Input(shape=(8,), name="input")
    hidden1 = K.layers.Dense(30, activation="relu", name="hidden1")(input_)
    hidden2 = K.layers.Dense(30, activation="relu", name="hidden2")(hidden1)
    concat = K.layers.Concatenate(name="concat")([input_, hidden2])
    output = K.layers.Dense(1, name="output")(concat)
    return K.Model(inputs=[input_], outputs=[output])


def two_inputs(K):
    input_wide = K.Input(shape=(5,), name="wide")
    input_deep = K.Input(shape=(6,), name="deep")
    hidden1 = K.layers.Dense(30, activation="relu", name="hidden1")(input_deep)
    hidden2 = K.layers.Dense(30, activation="relu", name="hidden2")(hidden1)
    concat = K.layers.concatenate([input_wide, hidden2], name="concat")
    output = K.layers.Dense(1, name="output")(concat)
    return K.Model(inputs=[input_wide, input_deep], outputs=[output])


def two_outputs(K):
    input_wide = K.Input(shape=(5,), name="wide")
    input_deep = K.Input(shape=(6,), name="deep")
    hidden1 = K.layers.Dense(30, activation="relu", name="hidden1")(input_deep)
    hidden2 = K.layers.Dense(30, activation="relu", name="hidden2")(hidden1)
    concat = K.layers.Concatenate(name="concat")([input_wide, hidden2])
    output = K.layers.Dense(1, name="output")(concat)
    aux_output = K.layers.Dense(1, name="aux_output")(hidden2)
    return K.Model(inputs=[input_wide, input_deep], outputs=[output, aux_output])


def residual(K):
    x = K.Input(shape=(8,), name="x")
    h = K.layers.Dense(8, activation="tanh", name="h1")(x)
    h = K.layers.Dense(8, activation="relu", name="h2")(h)
    r = K.layers.Add(name="skip")([x, h])
    h3 = K.layers.Dense(8, activation="tanh", name="h3")(r)
    m = K.layers.Multiply(name="gate")([h3, r])
    avg = K.layers.Average(name="avg")([m, K.layers.Maximum(name="max")([m, r]), K.layers.Minimum(name="min")([m, r])])
    d = K.layers.Subtract(name="sub")([avg, x])
    out = K.layers.Dense(3, activation="softmax", name="out")(d)
    return K.Model(x, out)


COMPILE = {  # per case: loss, loss_weights, metrics, the inputs' widths, the targets' kinds
    "wide_deep": dict(loss="mse", metrics=["mae"]),
    "two_inputs": dict(loss="mse", metrics=["mae"]),
    "two_outputs": dict(loss=("mse", "mse"), loss_weights=(0.9, 0.1), metrics=[["mae"], ["mse"]]),
    "residual": dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"]),
}
INPUTS = {"wide_deep": [8], "two_inputs": [5, 6], "two_outputs": [5, 6], "residual": [8]}
TARGETS = {"wide_deep": ["real"], "two_inputs": ["real"], "two_outputs": ["real", "real"], "residual": ["labels3"]}
