"""``Sequential``: an nn.Sequential whose Linear -> neuron stacks train with fused event kernels."""
from __future__ import annotations

import torch
from torch import nn

from ..core.events import Events
from ..errors import ConfigError, ShapeError
from .neurons import SpikingNeuron
from .recurrent import Recurrent


# Input density above which a stack runs its modules rather than fused (see Sequential).
MAX_DENSITY = 0.2


class Sequential(nn.Sequential):
    """``torch.nn.Sequential`` over [T, B, ...] that runs a (Linear, neuron)* stack in one fused
    forward kernel and one fused backward kernel on CPU (``nn.fused_stack``).

    The fused path walks each sample through all layers step by step: input events are
    found in the frames (or given: ``forward`` also takes ``core.Events``, the same input as
    event lists, which skips reading frames at all) and their weight rows added, hidden
    spikes pass on as events, and only the layers' input currents are kept for the backward
    (states are recomputed).  It computes the same outputs and gradients as running the
    modules one by one, which is what happens whenever it cannot run: ``fused=False``; a
    tensor not on CPU or not float; an input that needs a gradient; an input (frames or
    event lists) denser than ``max_density`` (the share of nonzero inputs above which the
    modules' matmuls win; measured for 700-W-20 stacks, training and inference: ~0.2 at
    W=128, 0.25-0.3 at W=256, above 0.3 at W=1024); or modules it does not cover (Recurrent,
    delays, stateful neurons, a torch/cupy backend, a Dropout that does not directly follow a
    hidden neuron), see ``fused_reason``.  A Dropout after a hidden neuron is a mask on
    its spikes (``nn.fused_stack.dropout_mask``, drawn from torch's generator like nn.Dropout).
    Without gradients (``torch.no_grad()``, or frozen parameters) and without an active
    Dropout, a fused stack runs the event core's inference kernel instead (``core.engine``:
    same sums and steps, identical outputs, no currents or event lists kept).
    On CUDA tensors with ``fused=True`` (and CuPy) the stack trains through the GPU stack
    (``nn.gpu_stack``: the CUDA network kernel forward, BPTT layer by layer); with 'auto' a
    CUDA input runs the modules (the layer-by-layer CUDA kernels).
    State dicts are those of ``nn.Sequential``.
    """

    def __init__(self, *modules: nn.Module, fused: bool | str = "auto", max_density: float = MAX_DENSITY) -> None:
        super().__init__(*modules)
        if fused not in (True, False, "auto"):
            raise ConfigError(f"fused must be True, False or 'auto', got {fused!r}")
        if not 0.0 <= float(max_density) <= 1.0:
            raise ConfigError(f"max_density must be in [0, 1], got {max_density!r}")
        self.fused, self.max_density = fused, float(max_density)

    def fused_reason(self, x: torch.Tensor) -> str | None:
        """None if ``forward(x)`` runs fused, else why it runs module by module."""
        plan = self._plan(x)
        return None if isinstance(plan, (list, tuple)) else plan

    def _plan(self, x: torch.Tensor):
        """The stack's (Linear, neuron) layers if ``forward(x)`` runs fused, else the reason it does not."""
        from .fused_stack import stack_layers
        from ..kernels.sparse_linear import sampled_density
        if self.fused is False:
            return "fused=False"
        layers = stack_layers(list(self), self.training)
        if isinstance(layers, str):
            return layers
        first = layers[0].linear
        if isinstance(x, Events):
            if x.n_channels != first.in_features:
                return f"the events have {x.n_channels} channels, the first Linear takes {first.in_features}"
        elif not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[2] != first.in_features:
            return "input is not [T, B, in_features]"
        elif x.device.type == "cuda":
            return self._gpu_plan(x, layers)
        elif x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            return f"input is {x.dtype} on {x.device}, not a CPU float tensor"
        elif x.requires_grad:
            return "the input needs a gradient"
        for lay in layers:
            for p in (lay.linear.weight, lay.linear.bias):
                if p is not None and (p.dtype != x.dtype or p.device.type != "cpu"):
                    return f"parameters are {p.dtype} on {p.device}, the input {x.dtype} on cpu"
        if self.fused == "auto":
            if isinstance(x, Events):
                density = x.idx.size / max(1, x.T * x.B * x.n_channels)
            else:
                density = sampled_density(x) if x.numel() else 0.0
            if density > getattr(self, "max_density", MAX_DENSITY):  # (modules pickled before it existed)
                return "the input is too dense for event row-adds"
        return layers

    def _gpu_plan(self, x: torch.Tensor, layers: list):
        """("gpu", layers) if a CUDA input runs the GPU training stack (``nn.gpu_stack``), else why not."""
        if self.fused is not True:
            return ("on CUDA the stack runs fused only with fused=True (the GPU stack, not yet measured against "
                    "the layer-by-layer CUDA kernels)")
        if x.dtype not in (torch.float32, torch.float64):
            return f"input is {x.dtype}, not float32 or float64"
        if any(lay.dropout for lay in layers):
            return "Dropout in training: the GPU stack has no dropout masks"
        for lay in layers:
            for p in (lay.linear.weight, lay.linear.bias):
                if p is not None and (p.dtype != x.dtype or p.device != x.device):
                    return f"parameters are {p.dtype} on {p.device}, the input {x.dtype} on {x.device}"
        from ..kernels import cupy_status
        why = cupy_status()
        return ("gpu", layers) if why is None else f"the GPU stack needs CuPy: {why}"

    def forward(self, x: torch.Tensor | Events, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x [T, B, K] (frames, or ``core.Events``: the same input as event lists) -> output of the
        last module [T, B, N]; lengths [B]: steps each sample runs (neurons and Recurrent layers
        stop there and output 0)."""
        from .fused_stack import run_stack
        plan = self._plan(x)
        if isinstance(plan, list):
            return run_stack(plan, x, lengths)
        if isinstance(plan, tuple):
            from .gpu_stack import run_gpu_stack
            return run_gpu_stack(plan[1], x, lengths)
        why = plan
        if self.fused is True and why != "fused=False":
            raise ConfigError(f"fused=True but this stack cannot run fused: {why}")
        if isinstance(x, Events) and not getattr(self[0], "takes_events", False):  # the modules take frames
            if x.n_channels != getattr(self[0], "in_features", x.n_channels):
                raise ShapeError(f"the events have {x.n_channels} channels, {type(self[0]).__name__} "
                                 f"takes {self[0].in_features}")
            x = x.to_dense()
        for m in self:
            x = m(x, lengths=lengths) if isinstance(m, (SpikingNeuron, Recurrent)) else m(x)
        return x
