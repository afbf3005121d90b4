"""The NumPy backend: the CPU fallback and every device op's reference (the test oracle)."""
