"""Where a training run computes: the ``train.device`` setting, and moving batches there.

``cpu`` (the default) runs the fused Numba kernels fed event lists; ``cuda`` / ``cuda:N``
puts the model and every batch (dense frames) on that GPU, where the neuron layers take the
CuPy kernels (``backend = "auto"`` picks them when CuPy is installed) and delayed layers a
cuDNN convolution; ``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``.  Under torchrun
with CUDA each process takes the GPU of its ``LOCAL_RANK``.
"""
from __future__ import annotations

import os
import re
from typing import Any

import torch
from torch import nn

from ..core.events import Events
from ..errors import BackendUnavailableError, ConfigError

DEVICE_PATTERN = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def check_device_name(name: str) -> None:
    """ConfigError unless ``name`` is 'cpu', 'auto', 'cuda' or 'cuda:N'."""
    if not isinstance(name, str) or not DEVICE_PATTERN.match(name):
        raise ConfigError(f"train.device = {name!r}: choose cpu, cuda, cuda:N or auto")


def wants_cuda(name: str) -> bool:
    """Whether ``train.device`` puts the run on a GPU on this machine."""
    check_device_name(name)
    return name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())


def resolve_device(name: str, world: int = 1) -> torch.device:
    """``train.device`` -> the torch device of this process (BackendUnavailableError when CUDA is
    asked for and torch sees no GPU).  With several processes and plain 'cuda' / 'auto', the GPU
    is the process's LOCAL_RANK."""
    if not wants_cuda(name):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"train.device = {name!r} but torch {torch.__version__} sees no CUDA device (a CPU build of torch, or "
            "no GPU on this machine); use train.device = \"cpu\", or install a CUDA build of torch and "
            "`pip install 'neurodyn[gpu]'` on a GPU machine")
    if ":" in name:
        dev = torch.device(name)
    else:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise BackendUnavailableError(f"train.device = {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    torch.cuda.set_device(dev)
    return dev


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (cpu for a model without any)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def to_device(x: Any, device: torch.device) -> Any:
    """A batch's tensor on ``device``; Events (the CPU kernels' input) stay where they are."""
    if isinstance(x, Events) or not isinstance(x, torch.Tensor) or x.device == device:
        return x
    return x.to(device, non_blocking=True)
