"""CUDA C sources of mlp_gpu's kernels, shipped inside the package; see backend/kernels.py."""
