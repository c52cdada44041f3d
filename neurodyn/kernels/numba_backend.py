"""The Numba CPU backend: generated multi-step kernels (``codegen``) run through ``fused.FusedNeuronFn``."""
from __future__ import annotations

from typing import Sequence

import numba
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

    def recurrent_weight_grad(self, model, surrogate, alpha, out: torch.Tensor, g_cur: torch.Tensor) -> torch.Tensor:
        """dL/dW [N, N] of cur[t] += W s[t-1]: sum over t, b of g_cur[t] s[t-1]^T, over the spikes only."""
        from .sparse_linear import _csr_weight_grad, to_csr
        T, B, N = out.shape
        gw_t = torch.zeros((N, N), dtype=out.dtype)
        if T > 1:
            csr = to_csr(out[:-1].reshape(-1, N).numpy())
            _csr_weight_grad(*csr, g_cur[1:].reshape(-1, N).numpy(), gw_t.numpy(),
                             max(1, min(numba.get_num_threads(), N)))
        return gw_t.t()


NUMBA = NumbaLauncher()
