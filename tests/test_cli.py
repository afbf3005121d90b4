"""The mlp-gpu command on a tiny IDX set the test writes itself."""
import json
import subprocess
import sys

import pytest

from mlp_gpu.cli import main


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
    from mlp_gpu.cli import build_parser

    for name in ACTIVATIONS:
        assert build_parser().parse_args(["train", "--activation", name]).activation == name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--activation", "swish"])
    err = capsys.readouterr().err
    assert "invalid choice: 'swish'" in err and all(repr(name) in err for name in ACTIVATIONS)
