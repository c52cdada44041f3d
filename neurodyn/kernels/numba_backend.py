"""The Numba CPU backend: generated multi-step kernels (``codegen``) run through ``fused.FusedNeuronFn``."""
from __future__ import annotations

from typing import Sequence

import torch

from .codegen import cpu_kernels


def _dtype(x: torch.Tensor) -> str:
    return "float32" if x.dtype == torch.float32 else "float64"


class NumbaLauncher:
    """Calls the Numba kernels on the numpy views of CPU tensors (no copies)."""

    def forward(self, model, surrogate, alpha, recurrent, tensors: Sequence[torch.Tensor]) -> None:
        kern = cpu_kernels(model, surrogate, alpha, dtype=_dtype(tensors[0]), recurrent=recurrent)
        kern.forward(*(t.numpy() for t in tensors))

    def backward(self, model, surrogate, alpha, recurrent, need_c, need_t, tensors: Sequence[torch.Tensor]) -> None:
        # One kernel variant per gradient pattern: unused parts of the VJP are not computed.
        kern = cpu_kernels(model, surrogate, alpha, need_c, need_t, _dtype(tensors[0]), recurrent)
        kern.backward(*(t.numpy() for t in tensors))


NUMBA = NumbaLauncher()
