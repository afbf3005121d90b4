"""ONNX export of functional graphs: every merge layer, several inputs and outputs, uint8 inputs;
ONNX Runtime's outputs equal our predict."""
import numpy as np
import pytest

import mlp_gpu

from ..models import cases

ort = pytest.importorskip("onnxruntime")


def _built(case):
    model = getattr(cases, case)(mlp_gpu)
    model._backend_request = "numpy"
    return model.build(seed=3)


@pytest.mark.parametrize("case", ["two_outputs", "residual", "wide_deep"])
def test_graph_export_matches_predict(case, tmp_path):
    model = _built(case)
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(7, w)).astype(np.float32) for w in cases.INPUTS[case]]
    model.export(tmp_path / "m.onnx", verbose=False)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    names = [i.name for i in session.get_inputs()]
    assert names == (["input"] if len(xs) == 1 else model.input_names)
    got = session.run(None, dict(zip(names, xs)))
    want = model.predict(tuple(xs) if len(xs) > 1 else xs[0])
    want = want if isinstance(want, list) else [want]
    assert [o.name for o in session.get_outputs()] == (["output"] if len(want) == 1 else model.output_names)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_graph_export_of_uint8_inputs_scales_each(tmp_path):
    model = _built("two_inputs")
    rng = np.random.default_rng(1)
    xs = [rng.integers(0, 256, (5, w), dtype=np.uint8) for w in cases.INPUTS["two_inputs"]]
    model.export(tmp_path / "m.onnx", verbose=False, input_dtype="uint8")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    got = session.run(None, dict(zip(model.input_names, xs)))[0]
    np.testing.assert_allclose(got, model.predict(tuple(xs)), rtol=1e-5, atol=1e-6)
