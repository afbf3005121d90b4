# Set-up and the everyday commands. `make train` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   := /usr/share/datasets/fashion-mnist
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
EPOCHS ?= 30
BACKEND ?= auto

.PHONY: install data train test bench gpu-check lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,plot]'
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST from Debian's dataset-fashion-mnist package, unless MLP_GPU_DATA points elsewhere.
data:
	@if [ -n "$$MLP_GPU_DATA" ] || [ -f $(DATA)/train-images-idx3-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing dataset-fashion-mnist with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else echo "Fashion-MNIST not found: set MLP_GPU_DATA to a folder with its IDX files" >&2; exit 1; fi

train: install data
	$(VENV)/bin/mlp-gpu train --epochs $(EPOCHS) --backend $(BACKEND) --output model.h5 --plot

test: install data
	$(PY) -m pytest -q

bench: install data
	$(PY) benchmarks/cpu_reference.py

# On a GPU machine with CuPy preinstalled (no venv, no network). GPU_OUT: where results go.
GPU_OUT ?= benchmarks/results
gpu-check:
	PYTHONPATH=. python3 benchmarks/gpu_check.py --out $(GPU_OUT)

lint: install
	$(VENV)/bin/ruff check mlp_gpu tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
