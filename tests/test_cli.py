"""The mlp-gpu command on a tiny IDX set the test writes itself."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlp_gpu.cli import build_parser, main, warn_workers
from mlp_gpu.io.onnx import OPSET


def test_train_evaluate_predict(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "m.h5"
    args = ["--data", str(tiny_dataset), "--backend", "numpy"]
    assert main(["train", *args, "--epochs", "8", "--hidden", "32", "--validation-size", "40", "--lr", "0.05",
                 "--verbose", "0", "--json", "--output", str(out)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.exists() and result["epochs"] == 8
    assert result["test_accuracy"] > 0.8  # the bands are easy to tell apart
    assert main(["evaluate", str(out), *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == pytest.approx(result["test_accuracy"])
    assert main(["predict", str(out), *args, "--count", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "(true" in lines[0]


def test_output_folder_checked_before_training(tiny_dataset, tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["train", "--data", str(tiny_dataset), "--output", str(tmp_path / "no" / "m.h5")])


def test_missing_model_is_a_clean_error(tiny_dataset, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.h5"), "--data", str(tiny_dataset)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_info_runs_as_a_command():
    proc = subprocess.run([sys.executable, "-m", "mlp_gpu.cli", "info"], capture_output=True, text=True, check=True)
    assert "backend numpy: available" in proc.stdout and "mlp_gpu" in proc.stdout


def test_activation_choices_are_the_library_activations(capsys):
    """--activation offers what Dense accepts: the one list in shared_constants, not a copy."""
    from mlp_gpu.backend.shared_constants import ACTIVATIONS

    for name in ACTIVATIONS:
        assert build_parser().parse_args(["train", "--activation", name]).activation == name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--activation", "swish"])
    err = capsys.readouterr().err
    assert "invalid choice: 'swish'" in err and all(repr(name) in err for name in ACTIVATIONS)


def _run_cli(args, cwd, hide=(), env=None):
    """``python -m mlp_gpu.cli ARGS`` in a child process; ``hide``: modules made unimportable there, as if not
    installed (a sitecustomize sets ``sys.modules[name] = None``)."""
    site = cwd / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in hide))
    paths = [str(site), str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **(env or {})}
    return subprocess.run([sys.executable, "-m", "mlp_gpu.cli", *args], cwd=cwd, env=child_env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def tiny_model(tiny_dataset, tmp_path, capsys):
    """A model mlp-gpu train saved after one epoch on the tiny set."""
    model = tmp_path / "m.h5"
    assert main(["train", "--data", str(tiny_dataset), "--backend", "numpy", "--epochs", "1", "--hidden", "8",
                 "--validation-size", "40", "--verbose", "0", "--output", str(model)]) == 0
    capsys.readouterr()
    return model


@pytest.mark.parametrize("option, module, extra", [
    (["--plot"], "matplotlib", "plot"),
    (["--tensorboard", "logs"], "tensorboardX", "tensorboard"),
    (["--workers", "2"], "mpi4py", "distributed"),
])
def test_train_refuses_a_missing_extra_before_training(tiny_dataset, tmp_path, option, module, extra):
    proc = _run_cli(["train", "--data", str(tiny_dataset), "--backend", "numpy", "--epochs", "1",
                     "--validation-size", "40", "--output", "m.h5", *option], tmp_path, hide=[module])
    assert proc.returncode == 2, proc.stderr
    assert f"needs {module}" in proc.stderr and f"pip install 'mlp_gpu[{extra}]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m.h5").exists() and "Epoch" not in proc.stdout + proc.stderr  # nothing trained


def test_export_refuses_a_missing_onnx_and_an_unknown_format(tiny_model, tmp_path, capsys):
    model = tiny_model
    proc = _run_cli(["export", str(model), "m.onnx"], tmp_path, hide=["onnx"])
    assert proc.returncode == 2 and "pip install 'mlp_gpu[onnx]'" in proc.stderr and "Traceback" not in proc.stderr
    capsys.readouterr()
    assert main(["export", str(model), str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "'.pt'" in err and ".onnx" in err and ".keras" in err and not (tmp_path / "m.pt").exists()


def test_export_reports_the_opset_number(tiny_model, tmp_path, capsys):
    pytest.importorskip("onnx")
    assert main(["export", str(tiny_model), str(tmp_path / "m.onnx")]) == 0
    assert f"ONNX opset {OPSET}," in capsys.readouterr().out
    assert main(["export", str(tiny_model), str(tmp_path / "m17.onnx"), "--opset", "17"]) == 0
    assert "ONNX opset 17," in capsys.readouterr().out


def test_predict_json_prints_json(tiny_dataset, tiny_model, capsys):
    args = ["--data", str(tiny_dataset), "--backend", "numpy"]
    assert main(["predict", str(tiny_model), *args, "--start", "2", "--count", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["index"] for r in rows] == [2, 3, 4]
    assert all(0 <= r["class"] < 10 and 0 < r["probability"] <= 1 and "name" in r and "true" in r for r in rows)


def test_a_misspelt_option_shows_the_commands_usage_and_the_nearest_option(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--epocs", "2"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert "usage: mlp-gpu train" in err and "--epocs" in err and "did you mean --epochs" in err
    with pytest.raises(SystemExit):
        main(["trian"])
    assert "did you mean train" in capsys.readouterr().err


def test_every_option_has_help_and_shows_its_default(capsys):
    parser = build_parser()
    for name, sub in parser.commands.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}: no help text"
        with pytest.raises(SystemExit):
            sub.parse_args(["--help"])
        text = " ".join(capsys.readouterr().out.split())
        for action in sub._actions:
            if action.option_strings and not any(action.default is no for no in (None, False, argparse.SUPPRESS)):
                assert f"(default: {action.default})" in text, f"{name} {action.option_strings}: default not shown"


def test_workers_warns_where_one_process_is_likely_faster():
    assert warn_workers(2, 1024, cores=16) is None
    small = warn_workers(2, 32, cores=2)
    assert "16 rows per rank" in small and "2 cores" in small
    crowded = warn_workers(4, 4096, cores=2)
    assert "4 ranks on 2 cores" in crowded and "rows per rank" not in crowded
