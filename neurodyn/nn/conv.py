"""Convolutional layers for multi-step spike tensors [T, B, C, H, W]: an event-driven Conv2d,
sum and average pooling, and Flatten.

``Conv2d`` is ``torch.nn.Conv2d`` applied to every frame; on sparse CPU input each input
event adds its kernel patch to the output (``kernels.sparse_conv``: cost ~ events x kernel
size x output channels) and the weight gradient is scattered from the same events.  Inputs
may also be ``core.Events`` over the flattened (C, H, W) pixels of a frame, the form the
data loaders hand over (no frames are built or scanned).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..core.events import Events
from ..errors import ConfigError, ShapeError
from ..kernels.sparse_conv import MAX_DENSITY, event_conv2d, square_size


def _frames(x: torch.Tensor, who: str) -> tuple[int, int]:
    """(T, B) of a [T, B, C, H, W] tensor; ShapeError naming ``who`` otherwise."""
    if not isinstance(x, torch.Tensor) or x.dim() != 5:
        raise ShapeError(f"{who} expects frames [T, B, C, H, W], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    return x.shape[0], x.shape[1]


class Conv2d(nn.Conv2d):
    """``torch.nn.Conv2d`` over [T, B, C, H, W] (every step alike) that scatters input events
    when the input is sparse.

    Same arguments, parameters and state dict as ``torch.nn.Conv2d``, plus ``event`` ('auto':
    the event path on CPU float input with at most ``max_density`` nonzeros, estimated on a
    few frames; True: always where it can run; False: never) and ``input_size`` (H, W), only
    needed for ``core.Events`` input of non-square frames.  The event path covers
    groups = dilation = 1 and zero padding; other settings run torch's convolution, which
    computes the same function and gradients.  Output [T, B, C_out, H_out, W_out].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", event: bool | str = "auto",
                 max_density: float = MAX_DENSITY, input_size: tuple[int, int] | None = None, **kw) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias, padding_mode=padding_mode, **kw)
        if event not in (True, False, "auto"):
            raise ConfigError(f"event must be True, False or 'auto', got {event!r}")
        if not 0.0 <= float(max_density) <= 1.0:
            raise ConfigError(f"max_density must be in [0, 1], got {max_density!r}")
        self.event, self.max_density = event, float(max_density)
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))

    def _event_padding(self) -> tuple[int, int] | None:
        """The padding the event kernel uses, or None if this layer's settings need torch."""
        if self.groups != 1 or tuple(self.dilation) != (1, 1) or self.padding_mode != "zeros":
            return None
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "same":  # torch pads (k - 1) / 2 each side; even kernels are uneven
            kh, kw = self.kernel_size
            return ((kh - 1) // 2, (kw - 1) // 2) if kh % 2 and kw % 2 else None
        return tuple(self.padding)

    def event_reason(self, x: torch.Tensor | Events) -> str | None:
        """None if ``forward(x)`` scatters events, else why it runs torch's dense convolution."""
        if self.event is False:
            return "event=False"
        if self._event_padding() is None:
            return "groups, dilation, padding mode or even-kernel 'same' padding not covered by the event kernel"
        dtype, device = (x.dtype, torch.device("cpu")) if isinstance(x, Events) else (x.dtype, x.device)
        if device.type != "cpu" or self.weight.device.type != "cpu":
            return f"tensors on {device}, not CPU"
        if dtype not in (torch.float32, torch.float64) or dtype != self.weight.dtype:
            return f"input {dtype}, weight {self.weight.dtype}: the event kernel needs both float32 or both float64"
        if self.event == "auto" and not isinstance(x, Events):
            from ..kernels.sparse_linear import sampled_density
            if x.numel() and sampled_density(x.reshape(x.shape[0], x.shape[1], -1)) > self.max_density:
                return f"input denser than max_density = {self.max_density}"
        return None

    takes_events = True  # ndn.Sequential hands it core.Events as they are

    def forward(self, x: torch.Tensor | Events) -> torch.Tensor:
        """x [T, B, C, H, W], the same flattened [T, B, C*H*W] (``input_size`` or square frames),
        or ``core.Events`` of flattened frames -> [T, B, C_out, H_out, W_out]."""
        if isinstance(x, torch.Tensor) and x.dim() == 3:
            hw = self.input_size or square_size(x.shape[2], self.in_channels)
            x = x.reshape(x.shape[0], x.shape[1], self.in_channels, *hw)
        if isinstance(x, Events):
            if x.n_channels % self.in_channels:
                raise ShapeError(f"the events have {x.n_channels} channels per step, not a multiple of "
                                 f"in_channels = {self.in_channels}")
            if self.event_reason(x) is None:
                return event_conv2d(x, self.weight, self.bias, self.stride, self._event_padding(), self.input_size)
            hw = self.input_size or square_size(x.n_channels, self.in_channels)
            x = x.to_dense().reshape(x.T, x.B, self.in_channels, *hw)
        T, B = _frames(x, type(self).__name__)
        if x.shape[2] != self.in_channels:
            raise ShapeError(f"{type(self).__name__}({self.in_channels}, ...) got {x.shape[2]} input channels "
                             f"in {tuple(x.shape)}")
        if self.event_reason(x) is None:
            return event_conv2d(x, self.weight, self.bias, self.stride, self._event_padding())
        y = super().forward(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])


class _Pool2d(nn.Module):
    """Pooling of every frame of [T, B, C, H, W] (time folded into the batch)."""

    divide = True

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        pair = lambda v: (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))  # noqa: E731
        self.kernel_size = pair(kernel_size)
        self.stride = pair(stride) if stride is not None else self.kernel_size
        self.padding = pair(padding)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ConfigError(f"{type(self).__name__}: kernel_size and stride must be >= 1 and padding >= 0, got "
                              f"{self.kernel_size}, {self.stride}, {self.padding}")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ConfigError(f"{type(self).__name__}: padding {self.padding} exceeds half the kernel {self.kernel_size}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [T, B, C, H, W] -> [T, B, C, H_out, W_out]."""
        T, B = _frames(x, type(self).__name__)
        # padded zeros count in the average (torch's count_include_pad), as NIR's AvgPool2d
        y = F.avg_pool2d(x.reshape(T * B, *x.shape[2:]), self.kernel_size, self.stride, self.padding,
                         divisor_override=None if self.divide else 1)
        return y.reshape(T, B, *y.shape[1:])

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_Pool2d):
    """Average pooling of every frame (``torch.nn.AvgPool2d``, padding counted): [T, B, C, H, W] ->
    [T, B, C, H_out, W_out].  ``stride`` defaults to ``kernel_size``."""


class SumPool2d(_Pool2d):
    """Sum pooling of every frame (NIR's SumPool2d: a spike adds 1 to its window's output, as
    average pooling times the window area): [T, B, C, H, W] -> [T, B, C, H_out, W_out]."""

    divide = False


class Flatten(nn.Module):
    """[T, B, ...] -> [T, B, features] (torch's Flatten with the time and batch axes kept)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ShapeError(f"Flatten expects [T, B, ...], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        return x.reshape(x.shape[0], x.shape[1], -1)


__all__ = ["AvgPool2d", "Conv2d", "Flatten", "SumPool2d"]
