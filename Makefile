# Set-up and the everyday commands. `make train` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   := /usr/share/datasets/fashion-mnist
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
EPOCHS ?= 30
BACKEND ?= auto

.PHONY: install peers data train test bench fuzz gpu-data gpu-check lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,plot]'
	touch $@

install: $(VENV)/.installed

# Peers for the Keras interchange tests and the benchmarks: PyTorch's CPU build where a local wheel
# is at hand (PyPI's default torch is a multi-GB CUDA build); without it those tests skip, saying so.
TORCH_CPU_WHEEL ?= $(firstword $(wildcard /opt/wheels/torch-*+cpu-*.whl))
$(VENV)/.peers: $(VENV)/.installed
	@if [ -n "$(TORCH_CPU_WHEEL)" ]; then $(PY) -m pip install -q "$(TORCH_CPU_WHEEL)" \
	  || echo "PyTorch CPU wheel $(TORCH_CPU_WHEEL) did not install: peer tests will skip"; \
	else echo "no PyTorch CPU wheel found: PyTorch and Keras peer tests will skip"; fi
	touch $@

peers: $(VENV)/.peers

# Fashion-MNIST from Debian's dataset-fashion-mnist package, unless MLP_GPU_DATA points elsewhere.
data:
	@if [ -n "$$MLP_GPU_DATA" ] || [ -f $(DATA)/train-images-idx3-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing dataset-fashion-mnist with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else echo "Fashion-MNIST not found: set MLP_GPU_DATA to a folder with its IDX files" >&2; exit 1; fi

train: install data
	$(VENV)/bin/mlp-gpu train --epochs $(EPOCHS) --backend $(BACKEND) --output model.h5 --plot

test: install peers data
	$(PY) -m pytest -q

bench: install peers data
	$(VENV)/bin/mlp-gpu bench --matrix cpu --out benchmarks/results

# On a GPU machine with CuPy preinstalled (no venv, no network). GPU_OUT: where results go.
# The device has no dataset package: `make gpu-data` here copies Fashion-MNIST into .data/, which the
# device call carries; there, run with MLP_GPU_DATA=.data/fashion-mnist.
GPU_OUT ?= benchmarks/results
gpu-data: data
	mkdir -p .data/fashion-mnist && cp $(DATA)/*.gz .data/fashion-mnist/

gpu-check:
	PYTHONPATH=. python3 benchmarks/gpu_check.py --out $(GPU_OUT)

# The long fuzzing budget (make test runs a quick one).
fuzz: install data
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q -m fuzz tests

lint: install
	$(VENV)/bin/ruff check mlp_gpu tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
