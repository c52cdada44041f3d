"""The one dispatch point: validate inputs, pick a backend by name, run a neuron over [T, B, N]."""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import BackendUnavailableError, ConfigError, ShapeError
from ..neurons.base import NeuronModel

BACKEND_NAMES = ("auto", "torch", "numba", "cupy")


def _numba_ok() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def cupy_status() -> str | None:
    """None if the cupy backend can run here, else the reason it cannot."""
    try:
        import cupy
    except ImportError:
        return "cupy is not installed (pip install 'neurodyn[gpu]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "cupy is installed but no CUDA GPU is visible"
    except Exception as e:  # cupy raises its own CUDARuntimeError when the driver is missing
        return f"cupy is installed but CUDA is unusable: {e}"
    return None


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """Map 'auto' to a concrete backend for this tensor; check that the named one can run."""
    if backend not in BACKEND_NAMES:
        raise ConfigError(f"unknown backend '{backend}'; choose one of {list(BACKEND_NAMES)}")
    if backend == "auto":
        if x.is_cuda:
            return "cupy" if cupy_status() is None else "torch"
        return "numba" if (_numba_ok() and x.device.type == "cpu") else "torch"
    if backend == "numba":
        if not _numba_ok():
            raise BackendUnavailableError("backend 'numba' asked for but numba is not installed")
        if x.device.type != "cpu":
            raise BackendUnavailableError(f"backend 'numba' runs on CPU tensors; got a tensor on {x.device}")
    if backend == "cupy":
        why = cupy_status()
        if why is not None:
            raise BackendUnavailableError(f"backend 'cupy' asked for but {why}")
        if not x.is_cuda:
            raise BackendUnavailableError(f"backend 'cupy' runs on CUDA tensors; got a tensor on {x.device}")
    return backend


def _runner(backend: str) -> Callable:
    if backend == "torch":
        from .reference import run_reference
        return run_reference
    from .fused import run_fused
    if backend == "numba":
        from .numba_backend import NUMBA
        return partial(run_fused, NUMBA)
    from .cupy_backend import CUPY
    return partial(run_fused, CUPY)


def step_counts(steps, B: int, T: int) -> np.ndarray:
    """Per-sample step counts [B] (int64) in [0, T]; None means every sample runs all T steps."""
    if steps is None:
        return np.full(B, T, dtype=np.int64)
    s = np.asarray(steps.cpu().numpy() if isinstance(steps, torch.Tensor) else steps, dtype=np.int64)
    if s.shape != (B,) or (s < 0).any() or (s > T).any():
        raise ShapeError(f"steps must be [{B}] integers in [0, {T}]")
    return s


def prepare_coefs(model: NeuronModel, coefs: Sequence[torch.Tensor | float], n: int,
                  like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Broadcast coefficients to [N] in x's dtype/device and check they are finite."""
    if len(coefs) != len(model.coefs):
        raise ConfigError(f"neuron '{model.name}' takes coefficients {model.coefs}, got {len(coefs)} values")
    out = []
    for name, c in zip(model.coefs, coefs):
        c = torch.as_tensor(c, dtype=like.dtype, device=like.device)
        if c.dim() > 1 or (c.dim() == 1 and c.shape[0] not in (1, n)):
            raise ShapeError(f"coefficient '{name}' of neuron '{model.name}' must be a scalar or [{n}], got {tuple(c.shape)}")
        out.append(c.expand(n).contiguous() if c.dim() == 0 or c.shape[0] == 1 else c.contiguous())
    # One finiteness check for all (each check is a device sync on GPU); the name on failure.
    if out and not bool(torch.isfinite(torch.stack([c.detach() for c in out])).all()):
        bad = next(name for name, c in zip(model.coefs, out) if not bool(torch.isfinite(c).all()))
        raise ConfigError(f"coefficient '{bad}' of neuron '{model.name}' has NaN or inf values")
    return tuple(out)


def run_neuron(
    model: NeuronModel,
    x: torch.Tensor,
    coefs: Sequence[torch.Tensor | float],
    state0: Sequence[torch.Tensor] | None = None,
    lengths: torch.Tensor | None = None,
    surrogate: str = "atan",
    alpha: float | None = None,
    backend: str = "auto",
    rec_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Run a neuron layer over all time steps.

    x: input current [T, B, N]; coefs: per-neuron coefficients (scalars or [N]) in the
    order of ``model.coefs``; state0: initial state ([B, N] each, zeros if None);
    lengths: [B] steps each sample runs (the rest cost nothing, output 0, state frozen).
    Returns out [T, B, N] (spikes, or the membrane for non-spiking models) and the state
    trajectories after each step, one [T, B, N] tensor per state variable.
    rec_weight: [N, N] recurrent weights (``nn.Linear(N, N, bias=False).weight``): step t's
    input also gets ``out[t-1] @ rec_weight.T`` (a recurrent layer), or None.
    """
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"input must be a torch.Tensor [T, B, N], got {type(x).__name__}")
    if x.dim() != 3:
        raise ShapeError(f"input must have shape [T, B, N], got {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ShapeError(f"input must be float32 or float64, got {x.dtype}")
    T, B, N = x.shape
    name = resolve_backend(backend, x)
    x = x.contiguous()
    c = prepare_coefs(model, coefs, N, x)
    if state0 is None:
        s0 = tuple(torch.zeros((B, N), dtype=x.dtype, device=x.device) for _ in model.states)
    else:
        if len(state0) != len(model.states):
            raise ShapeError(f"neuron '{model.name}' has state {model.states}, got {len(state0)} tensors")
        s0 = []
        for sname, s in zip(model.states, state0):
            if tuple(s.shape) != (B, N):
                raise ShapeError(f"initial state '{sname}' must be [{B}, {N}], got {tuple(s.shape)}")
            s0.append(s.to(x.dtype).contiguous())
        s0 = tuple(s0)
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.int64, device=x.device)
    else:
        lengths = torch.as_tensor(lengths, device=x.device).to(torch.int64).contiguous()
        if tuple(lengths.shape) != (B,):
            raise ShapeError(f"lengths must be [{B}] (one step count per sample), got {tuple(lengths.shape)}")
    if rec_weight is not None:
        if tuple(rec_weight.shape) != (N, N):
            raise ShapeError(f"recurrent weights must be [{N}, {N}], got {tuple(rec_weight.shape)}")
        if not model.spiking:
            raise ConfigError(f"neuron '{model.name}' is not spiking: recurrent input needs spikes")
        rec_weight = rec_weight.to(x.dtype)
    return _runner(name)(model, x, s0, c, lengths, surrogate, alpha, rec_weight)
