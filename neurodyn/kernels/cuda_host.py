"""Run the generated CUDA kernels' per-thread bodies on the CPU (host C++ compiler + ctypes).

A GPU is not always at hand; the text that NVRTC compiles for the GPU also compiles as
plain C++ (see ``cuda_codegen``), with a host entry that loops the same per-thread body
over all threads.  ``HostCudaLauncher`` plugs that into ``fused.FusedNeuronFn`` exactly
where ``CupyLauncher`` goes, so the tests check the generated CUDA math and the backend's
autograd glue against the torch reference on any machine with a C++ compiler.
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
from .cuda_codegen import render_cuda_module
from .cupy_backend import _no_recurrence, _suffix

CXX_FLAGS = ("-O2", "-std=c++14", "-fPIC", "-shared", "-ffp-contract=off", "-x", "c++")


def host_compiler() -> str | None:
    """Path of a C++ compiler ($CXX, g++ or clang++), or None."""
    for c in (os.environ.get("CXX"), "g++", "clang++"):
        if c and shutil.which(c):
            return shutil.which(c)
    return None


@lru_cache(maxsize=None)
def host_library(model, surrogate: str, alpha: float | None, need_c=None, need_t=None) -> ctypes.CDLL:
    """Compile (once, cached on disk by source hash) and load the host build of a kernel module."""
    cxx = host_compiler()
    if cxx is None:
        raise BackendUnavailableError("no C++ compiler found ($CXX, g++ or clang++) to build the host CUDA check")
    src = render_cuda_module(model, surrogate, alpha, need_c, need_t)
    so = cache_dir() / f"cuda_host_{model.name}_{hashlib.sha1(src.encode()).hexdigest()[:16]}.so"
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


def _call(fn, x: torch.Tensor, tensors: Sequence[torch.Tensor]) -> None:
    T, B, N = x.shape
    ptrs = [ctypes.c_void_p(t.data_ptr()) for t in tensors]
    fn(*ptrs, ctypes.c_longlong(T), ctypes.c_longlong(B), ctypes.c_longlong(N))


class HostCudaLauncher:
    """Runs the CUDA kernels' host build on CPU tensors (a test double for ``CupyLauncher``)."""

    def forward(self, model, surrogate, alpha, recurrent, tensors: Sequence[torch.Tensor]) -> None:
        _no_recurrence(recurrent)
        lib = host_library(model, surrogate, alpha)
        _call(getattr(lib, f"forward_{_suffix(tensors[0])}_host"), tensors[0], tensors)

    def backward(self, model, surrogate, alpha, recurrent, need_c, need_t, tensors: Sequence[torch.Tensor]) -> None:
        lib = host_library(model, surrogate, alpha, need_c, need_t)
        _call(getattr(lib, f"backward_{_suffix(tensors[0])}_host"), tensors[0], tensors)
