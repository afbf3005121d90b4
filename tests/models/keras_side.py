"""Run by the tests in a fresh process (Keras picks its backend at import): build a case in Keras, set
the given weights by layer name, train full-batch SGD without shuffling, write the History as JSON."""
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import cases  # noqa: E402

case, data_path, out_path, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
data = np.load(data_path, allow_pickle=False)
xs = [data[f"x{i}"] for i in range(len(cases.INPUTS[case]))]
if len(sys.argv) > 5:  # files: load our .keras file ("load") or save Keras' ("save")
    mode, keras_path = sys.argv[5], sys.argv[6]
    if mode == "load":
        model = keras.models.load_model(keras_path)
    else:
        model = getattr(cases, case)(keras)
        model.compile(optimizer=keras.optimizers.SGD(0.05), **cases.COMPILE[case])
        model.save(keras_path)
    pred = model.predict(tuple(xs) if len(xs) > 1 else xs[0], verbose=0)
    json.dump({"layers": [layer.name for layer in model.layers], "class": type(model).__name__,
               "loss": str(model.loss), "predict": [np.asarray(p).tolist() for p in (pred if isinstance(pred, list)
                                                                                     else [pred])]},
              open(out_path, "w"))
    sys.exit(0)
model = getattr(cases, case)(keras)
for layer in model.layers:
    names = sorted(k for k in data.files if k.startswith(f"w/{layer.name}/"))
    if names:
        layer.set_weights([data[k] for k in names])
ys = [data[f"y{i}"] for i in range(len(cases.TARGETS[case]))]
model.compile(optimizer=keras.optimizers.SGD(0.05), **cases.COMPILE[case])
history = model.fit(tuple(xs) if len(xs) > 1 else xs[0], tuple(ys) if len(ys) > 1 else ys[0],
                    batch_size=len(xs[0]), epochs=epochs, shuffle=False, verbose=0)
evaluated = model.evaluate(tuple(xs) if len(xs) > 1 else xs[0], tuple(ys) if len(ys) > 1 else ys[0],
                           batch_size=len(xs[0]), verbose=0, return_dict=True)
pred = model.predict(tuple(xs) if len(xs) > 1 else xs[0], verbose=0)
json.dump({"history": history.history, "layers": [layer.name for layer in model.layers], "evaluate": evaluated,
           "predict": [np.asarray(p).tolist() for p in (pred if isinstance(pred, list) else [pred])],
           "weights": {layer.name: [w.tolist() for w in layer.get_weights()] for layer in model.layers}},
          open(out_path, "w"))
