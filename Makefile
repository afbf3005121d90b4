# Set-up and the everyday commands. `make train` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   := /usr/share/datasets/fashion-mnist
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
EPOCHS ?= 30
BACKEND ?= auto

.PHONY: install peers data cupy-api headers train test bench bench-toolbox fuzz gpu-data gpu-wheels gpu-check gpu-routes gpu-persistent lint clean

# Two installs: `make train` the package with only what training and its plot need (EXTRAS; add cuda13 or
# gpu for CuPy on a GPU machine), `make test` the dev extra on top. Each stamp names its extras, so a
# different EXTRAS installs again.
EXTRAS ?= plot,jit
INSTALLED := $(VENV)/.installed-$(EXTRAS)
DEV       := $(VENV)/.installed-dev,plot

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

NOTE_DEV   := the test extras: pytest, Hypothesis, Keras 3, ONNX Runtime, TensorBoard, scikit-learn, MPI, \
	nvmath-python, Numba; about 1 GB, a minute or two
NOTE_TRAIN := NumPy, SciPy, h5py, tqdm and what the extras name (plot: matplotlib; jit: Numba with llvmlite, 210 MB); about 570 MB, a minute
$(VENV)/.installed-%: pyproject.toml | $(PY)
	@echo "make: installing mlp_gpu[$*] into $(VENV) ($(if $(findstring dev,$*),$(NOTE_DEV),$(NOTE_TRAIN)))"
	$(PY) -m pip install -q -e '.[$*]'
	touch $@

install: $(INSTALLED)

# Peers for the Keras interchange tests and the benchmarks: PyTorch's CPU build where a local wheel
# is at hand (PyPI's default torch is a multi-GB CUDA build); without it those tests skip, saying so.
TORCH_CPU_WHEEL ?= $(firstword $(wildcard /opt/wheels/torch-*+cpu-*.whl))
$(VENV)/.peers: $(DEV)
	@if [ -n "$(TORCH_CPU_WHEEL)" ]; then echo "make: installing PyTorch's CPU build from $(TORCH_CPU_WHEEL)"; \
	  $(PY) -m pip install -q "$(TORCH_CPU_WHEEL)" \
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
	@echo "make: training the reference MLP for $(EPOCHS) epochs on backend $(BACKEND) (30 epochs: about 20 s on 2 idle \
	CPU cores, several times that when they are shared; 3 s on an H200 GPU with CuPy)"
	$(VENV)/bin/mlp-gpu train --epochs $(EPOCHS) --backend $(BACKEND) --output model.h5 --plot

# Each CuPy release the gpu and cuda13 extras support, pip-installed into a folder of its own (they all
# install as `cupy`), for the API conformance test; CuPy imports without a GPU.
CUPY_API := .cupy-api
$(CUPY_API)/.installed: pyproject.toml tests/cupy_api.py $(DEV)
	rm -rf $(CUPY_API)
	$(PY) tests/cupy_api.py install $(CUPY_API) pyproject.toml
	touch $@

cupy-api: $(CUPY_API)/.installed

test: $(DEV) peers data cupy-api
	@echo "make: running the test suite (about 13 minutes on 2 cores; GPU tests skip without a GPU, saying why)"
	$(PY) -m pytest -q

# The CPU matrix, quiet and then beside one busy process per CPU; README's CPU table is copied from its results.
# JAX (the bench extra) is a peer of the CPU bench only: make test does not install it.
$(VENV)/.bench-peers: $(VENV)/.peers
	$(PY) -m pip install -q -e '.[bench]' || echo "jax did not install: the bench skips its JAX peer, saying so"
	touch $@

bench: peers data $(VENV)/.bench-peers
	$(VENV)/bin/mlp-gpu bench --matrix cpu --out benchmarks/results
	$(PY) benchmarks/readme_table.py

# Chapter 11's net (BatchNormalization, Dropout, Nadam) for 10 epochs against Keras 3 and PyTorch.
bench-toolbox: peers data
	$(VENV)/bin/mlp-gpu bench --matrix toolbox --repeats 9 --out benchmarks/results

# On a GPU machine with CuPy preinstalled (no venv, no network). GPU_OUT: where results go.
# The device has no dataset package: `make gpu-data` here copies Fashion-MNIST into .data/, which the
# device call carries; there, run with MLP_GPU_DATA=.data/fashion-mnist.
GPU_OUT ?= benchmarks/results
gpu-data: data
	mkdir -p .data/fashion-mnist && cp $(DATA)/*.gz .data/fashion-mnist/

# nvmath-python (the cuBLAS / cuBLASLt graph routes) is not on the GPU machine: `make gpu-wheels` here
# downloads its wheel for the device's Python 3.12 into .whl/ (ignored), which the device call carries;
# gpu-check installs it from there (cuda-bindings, cuda-core, cuda-pathfinder and numpy are there already).
NVMATH ?= nvmath-python==1.0.0
GPU_WHEEL_PLATFORMS := $(foreach n,28 27 17,--platform manylinux_2_$(n)_x86_64) --platform manylinux2014_x86_64
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  $(GPU_WHEEL_PLATFORMS) -d .whl "$(NVMATH)"

GPU_SITE := /tmp/mlp_gpu_site
GPU_ENV = PYTHONPATH=$$(if ls .whl/nvmath_python-*.whl >/dev/null 2>&1 && python3 -m pip install -q --no-index \
	--no-deps --no-compile --no-cache-dir --upgrade --target $(GPU_SITE) .whl/nvmath_python-*.whl >&2; \
	then echo $(GPU_SITE):.; else echo .; fi)

GPU_BUDGET ?= 300
gpu-check:
	$(GPU_ENV) python3 benchmarks/gpu_check.py --budget $(GPU_BUDGET) --out $(GPU_OUT)

# Only the graph routes against PyTorch (a few minutes less than the whole gpu-check).
gpu-routes:
	$(GPU_ENV) python3 benchmarks/gpu_check.py --routes-only --out $(GPU_OUT)

# Only the persistent route (issue 28): its GPU tests and the 30-epoch headline, a short first device check.
gpu-persistent:
	$(GPU_ENV) python3 benchmarks/gpu_check.py --persistent-only --out $(GPU_OUT)

# The generated kernel headers (shared numbers, the activation switch) from their Python sources; a test
# keeps the committed files equal to them.
headers: install
	$(PY) -c "from mlp_gpu import activations; from mlp_gpu.backend import shared_constants as s; \
	open('kernels/shared_constants.cuh', 'w').write(s.header_text()); \
	open('kernels/activations.cuh', 'w').write(activations.cuda_header())"

# The long fuzzing budget (make test runs a quick one).
fuzz: $(DEV) data
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q -m fuzz tests

lint: $(DEV)
	$(VENV)/bin/ruff check mlp_gpu tests benchmarks

clean:
	rm -rf $(VENV) $(CUPY_API) build dist *.egg-info .pytest_cache
