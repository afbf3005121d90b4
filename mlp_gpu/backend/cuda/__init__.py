"""The CUDA backend through CuPy: kernels (``ops``, ``layer_ops``), GEMM routes and CUDA graphs. Importing
it imports no CuPy: ``backend._import_cupy`` does, once a CUDA backend is asked for."""
