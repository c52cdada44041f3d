"""Run the generated CUDA kernels' per-thread bodies on the CPU (host C++ compiler + ctypes).

A GPU is not always at hand; the text that NVRTC compiles for the GPU also compiles as
plain C++ (see ``cuda_codegen``), with host entries that run the same per-thread bodies
for all threads (a recurrent kernel's block phase by phase, barrier to barrier).
``HostCudaLauncher`` plugs that into ``fused.FusedNeuronFn`` exactly where ``CupyLauncher``
goes, so the tests check the generated CUDA math and the backend's autograd glue against
the torch reference and the Numba kernels on any machine with a C++ compiler.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from typing import Sequence

import torch

from ..errors import BackendUnavailableError
from .codegen import cache_dir
from .cuda_codegen import block_threads, render_cuda_module
from .cupy_backend import CudaKernels, _suffix

CXX_FLAGS = ("-O2", "-std=c++14", "-fPIC", "-shared", "-ffp-contract=off", "-x", "c++")


def host_compiler() -> str | None:
    """Path of a C++ compiler ($CXX, g++ or clang++), or None."""
    for c in (os.environ.get("CXX"), "g++", "clang++"):
        if c and shutil.which(c):
            return shutil.which(c)
    return None


@lru_cache(maxsize=None)
def host_library(model, surrogate: str, alpha: float | None, need_c=None, need_t=None,
                 recurrent: bool = False) -> ctypes.CDLL:
    """Compile (once, cached on disk by source hash) and load the host build of a kernel module."""
    return compile_host(render_cuda_module(model, surrogate, alpha, need_c, need_t, recurrent), model.name)


def compile_host(src: str, stem: str) -> ctypes.CDLL:
    """Compile (once, cached on disk by source hash) and load the host C++ build of CUDA source ``src``."""
    cxx = host_compiler()
    if cxx is None:
        raise BackendUnavailableError("no C++ compiler found ($CXX, g++ or clang++) to build the host CUDA check")
    so = cache_dir() / f"cuda_host_{stem}_{hashlib.sha1(src.encode()).hexdigest()[:16]}.so"
    if not so.exists():
        with tempfile.TemporaryDirectory() as d:
            cu = os.path.join(d, "k.cu")
            with open(cu, "w") as f:
                f.write(src)
            # compile next to the target, then rename: concurrent test processes never see half a file
            tmp = f"{so}.{os.getpid()}.tmp"
            r = subprocess.run([cxx, *CXX_FLAGS, cu, "-o", tmp], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"host build of the generated CUDA source failed:\n{r.stderr[-2000:]}")
            os.replace(tmp, so)
    return ctypes.CDLL(str(so))


def _call(fn, x: torch.Tensor, tensors: Sequence[torch.Tensor], *extra: int) -> None:
    T, B, N = x.shape
    ptrs = [ctypes.c_void_p(t.data_ptr()) for t in tensors]
    fn(*ptrs, ctypes.c_longlong(T), ctypes.c_longlong(B), ctypes.c_longlong(N), *map(ctypes.c_longlong, extra))


class HostCudaLauncher(CudaKernels):
    """Runs the CUDA kernels' host build on CPU tensors (a test double for ``CupyLauncher``).

    threads: the block size a recurrent kernel emulates (default: what the GPU launch uses,
    ``cuda_codegen.block_threads``); a small one makes each thread stride over several neurons.
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def _run(self, kind, model, surrogate, alpha, recurrent, need_c, need_t, tensors) -> None:
        x = tensors[0]
        fn = getattr(host_library(model, surrogate, alpha, need_c, need_t, recurrent), f"{kind}_{_suffix(x)}_host")
        if recurrent:
            _call(fn, x, tensors, self.threads or block_threads(x.shape[2]))
        else:
            _call(fn, x, tensors)

    def recurrent_weight_grad(self, model, surrogate, alpha, out: torch.Tensor, g_cur: torch.Tensor) -> torch.Tensor:
        N = out.shape[2]
        g_wt = torch.zeros((N, N), dtype=out.dtype)
        lib = host_library(model, surrogate, alpha, None, None, True)
        _call(getattr(lib, f"weight_grad_{_suffix(out)}_host"), out, [out, g_cur, g_wt])
        return g_wt.t()
