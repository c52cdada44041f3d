"""Backends that run a neuron model over [T, B, N]: torch (reference), numba (CPU), cupy (GPU)."""
from .dispatch import BACKEND_NAMES, cupy_status, resolve_backend, run_neuron

__all__ = ["BACKEND_NAMES", "cupy_status", "resolve_backend", "run_neuron"]
