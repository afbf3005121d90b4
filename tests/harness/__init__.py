"""Runs the CUDA kernels on the CPU: see cuda_host.h and host_ops.py."""
