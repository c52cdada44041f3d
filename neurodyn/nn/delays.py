"""Learnable synaptic delays, DCLS-style (Hammouamri, Khalfaoui-Hassani and Masquelier 2023).

Every input-output pair (i, o) has a weight W[o, i] and a real-valued delay d[o, i] in
[0, max_delay] steps.  Its synapse is a temporal kernel over the K = max_delay + 1 taps
k = 0..max_delay: a Gaussian of width sigma (steps) centred at d, normalised to sum 1 over
the taps, times the weight.  The layer is the causal convolution

    y[t, b, o] = bias[o] + sum_i sum_k W[o, i] g(k; d[o, i], sigma) x[t - k, b, i].

The spread kernel gives the loss a gradient with respect to d.  sigma shrinks during
training (``SigmaSchedule``); at sigma = 0 the kernel is one-hot at round(d), which is the
integer-delay synapse y[t, o] = sum_i W[o, i] x[t - D[o, i], i] that ``round_delays_()``
switches to (``shift_add`` here when gradients are needed, else the Numba ring buffers of
``kernels.delay_buffer``, which the event core can call too).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from ..kernels.delay_buffer import propagate_delayed
from ..kernels.delay_conv import delay_conv_torch
from ..kernels.delay_gpu import delay_conv1d
from ..kernels.delay_window import TAP_TOL, spread_delay_linear


def gaussian_taps(delay: torch.Tensor, sigma: float, max_delay: int) -> torch.Tensor:
    """Normalised Gaussian taps [..., K] (K = max_delay + 1) centred at ``delay`` [...] steps.

    sigma (steps) > 0: softmax over k of -(k - d)^2 / (2 sigma^2), i.e. the Gaussian divided by
    its sum over the taps, computed without underflow for small sigma.  sigma == 0: one-hot at
    round(d) (the limit sigma -> 0; no gradient with respect to d).
    """
    k = torch.arange(max_delay + 1, dtype=delay.dtype, device=delay.device)
    if sigma == 0:
        return nn.functional.one_hot(torch.round(delay).long(), max_delay + 1).to(delay.dtype)
    z = -0.5 * ((k - delay.unsqueeze(-1)) / sigma) ** 2
    return torch.softmax(z, dim=-1)


def shift_add(x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor) -> torch.Tensor:
    """Integer-delay synapses (torch reference): x [T, B, I], weight [O, I], delays [O, I] int steps.

    y[t, b, o] = sum_i weight[o, i] x[t - delays[o, i], b, i] (terms with t < delay are 0),
    computed as one shifted matrix product per distinct delay value.
    """
    if x.dim() != 3 or x.shape[2] != weight.shape[1] or delays.shape != weight.shape:
        raise ShapeError(f"shift_add: x [T, B, {weight.shape[1]}], weight {tuple(weight.shape)} and delays of "
                         f"the same shape expected; got x {tuple(x.shape)}, delays {tuple(delays.shape)}")
    if delays.dtype.is_floating_point or bool((delays < 0).any()):
        raise ConfigError("shift_add: delays must be non-negative integers (steps)")
    T, B, I = x.shape
    y = x.new_zeros((T, B, weight.shape[0]))
    for k in torch.unique(delays).tolist():
        if k >= T:
            continue
        wk = torch.where(delays == k, weight, torch.zeros((), dtype=weight.dtype, device=weight.device))
        y[k:] += (x[: T - k].reshape(-1, I) @ wk.t()).reshape(T - k, B, -1)
    return y


class DelayedLinear(nn.Module):
    """Linear map with a learnable delay per input-output pair, multi-step: [T, B, I] -> [T, B, O].

    max_delay: largest delay in steps (kernel of max_delay + 1 taps); sigma_init: starting
    kernel width in steps (default max_delay / 2, as in the paper); delay_init: (lo, hi) steps,
    delays start uniform in it (default the whole range); bias: added at every step (not
    delayed).  delay_lr_scale: the delays are stored as ``delay_param`` and used as
    ``delay_param * delay_lr_scale``, so under Adam they move ``delay_lr_scale`` times faster
    than the weights at one learning rate (the paper trains positions with a 100x larger
    rate).  ``event``: 'auto' trains through the Numba kernels on CPU when at most
    ``max_density`` of the input is nonzero (0.3: the measured break-even with the dense
    torch path is ~0.35 at 256 x 256 synapses, 26 taps; ``kernels.delay_window``: taps and
    their gradients fused into the kernels, each synapse's taps cut to the window where they
    are not below float resolution, which narrows as sigma decays; event-driven over the
    input spikes, or over the window taps as shifted rows once the windows are short,
    whichever costs less) and, once rounded, infers (no grad)
    through the Numba ring buffers (faster than dense shift-and-add at any density measured, up
    to 0.5); True forces the Numba paths, False the torch paths.

    The delays are kept in [0, max_delay] by clamping the parameter in place at every forward
    in training mode (the paper clamps after each optimiser step).
    """

    def __init__(self, in_features: int, out_features: int, max_delay: int, sigma_init: float | None = None,
                 bias: bool = False, delay_init: tuple[float, float] | None = None, delay_lr_scale: float = 1.0,
                 event: bool | str = "auto", max_density: float = 0.3, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if not all(isinstance(n, int) and n > 0 for n in (in_features, out_features)):
            raise ConfigError(f"DelayedLinear sizes must be positive integers, got {in_features!r}, {out_features!r}")
        if not isinstance(max_delay, int) or isinstance(max_delay, bool) or max_delay < 0:
            raise ConfigError(f"max_delay must be a non-negative integer number of steps, got {max_delay!r}")
        if not (isinstance(delay_lr_scale, (int, float)) and math.isfinite(delay_lr_scale) and delay_lr_scale > 0):
            raise ConfigError(f"delay_lr_scale must be a positive number, got {delay_lr_scale!r}")
        if event not in (True, False, "auto"):
            raise ConfigError(f"event must be True, False or 'auto', got {event!r}")
        lo, hi = delay_init if delay_init is not None else (0.0, float(max_delay))
        if not (0 <= lo <= hi <= max_delay):
            raise ConfigError(f"delay_init must satisfy 0 <= lo <= hi <= max_delay={max_delay}, got {delay_init!r}")
        self.in_features, self.out_features, self.max_delay = in_features, out_features, max_delay
        self.delay_lr_scale, self.event, self.max_density = float(delay_lr_scale), event, float(max_density)
        dtype = dtype or torch.get_default_dtype()
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's init: the kernel sums to W
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype)) if bias else None
        d0 = torch.empty(out_features, in_features, dtype=dtype).uniform_(lo, hi)
        self.delay_param = nn.Parameter(d0 / self.delay_lr_scale)
        self.sigma = 0.0
        self.set_sigma(max_delay / 2.0 if sigma_init is None else sigma_init)
        self.rounded = False

    @property
    def delay(self) -> torch.Tensor:
        """Real-valued delays [O, I] in steps (differentiable)."""
        return self.delay_param * self.delay_lr_scale

    def set_sigma(self, sigma: float) -> None:
        """Set the kernel width (steps, >= 0; 0 = one-hot at the rounded delay)."""
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
            raise ConfigError(f"sigma must be a finite number of steps >= 0, got {sigma!r}")
        self.sigma = float(sigma)

    def clamp_delays_(self) -> None:
        """Clamp the delays into [0, max_delay] in place (only touched when out of range, so a
        parameter saved for backward by an earlier call is not modified)."""
        hi = self.max_delay / self.delay_lr_scale
        with torch.no_grad():
            p = self.delay_param
            if bool((p < 0).any()) or bool((p > hi).any()):
                p.clamp_(0.0, hi)

    def integer_delays(self) -> torch.Tensor:
        """Rounded delays [O, I] (int64 steps in [0, max_delay])."""
        return torch.round(self.delay.detach().clamp(0, self.max_delay)).long()

    def round_delays_(self) -> "DelayedLinear":
        """Round the delays to integer steps and run as integer-delay synapses from now on."""
        self.clamp_delays_()
        with torch.no_grad():
            self.delay_param.copy_(self.integer_delays().to(self.delay_param.dtype) / self.delay_lr_scale)
        self.delay_param.requires_grad_(False)
        self.sigma, self.rounded = 0.0, True
        return self

    def taps(self) -> torch.Tensor:
        """Normalised delay kernels [O, I, K] at the current sigma (without the weights)."""
        return gaussian_taps(self.delay.clamp(0, self.max_delay), self.sigma, self.max_delay)

    def kernel(self) -> torch.Tensor:
        """Synaptic kernels W[o, i] g(k; d[o, i], sigma) laid out [I, K, O] for ``delay_conv``."""
        return (self.weight.unsqueeze(-1) * self.taps()).permute(1, 2, 0).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[2] != self.in_features:
            raise ShapeError(f"DelayedLinear({self.in_features} -> {self.out_features}) expects [T, B, "
                             f"{self.in_features}], got {tuple(x.shape)}")
        if self.rounded:
            grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
            cpu_float = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            if not grad and cpu_float and self.event is not False:
                y = propagate_delayed(x, self.weight, self.integer_delays())  # Numba ring buffers
            else:
                y = shift_add(x, self.weight, self.integer_delays().to(x.device))
        else:
            if self.training:
                self.clamp_delays_()
            events = self._events(x)
            if events is not None:
                y = spread_delay_linear(x, self.weight, self.delay.clamp(0, self.max_delay), self.sigma,
                                        self.max_delay, events)
            elif x.device.type == "cuda":
                y = delay_conv1d(x, self.kernel())  # one cuDNN convolution over time
            else:
                y = delay_conv_torch(x, self.kernel())  # the reference
        return y + self.bias if self.bias is not None else y

    def _events(self, x: torch.Tensor) -> int | None:
        """Nonzeros of x when the Numba kernels take it, None for the torch path."""
        if self.event is False or x.device.type != "cpu" or x.dtype not in TAP_TOL:
            return None
        if x.dtype != self.weight.dtype or self.weight.device.type != "cpu":
            return None
        n = int(np.count_nonzero(x.detach().numpy()))  # numpy's count: a third of torch's time
        return n if self.event is True or (x.numel() > 0 and n <= self.max_density * x.numel()) else None

    def get_extra_state(self) -> dict:
        # sigma and the rounded flag travel with state_dict (checkpoints, resume).
        return {"sigma": self.sigma, "rounded": self.rounded}

    def set_extra_state(self, state: dict) -> None:
        self.set_sigma(float(state["sigma"]))
        self.rounded = bool(state["rounded"])
        self.delay_param.requires_grad_(not self.rounded)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, max_delay={self.max_delay}, sigma={self.sigma:.3g}, "
                f"rounded={self.rounded}, bias={self.bias is not None}")


def delayed_layers(model: nn.Module) -> list[DelayedLinear]:
    """The DelayedLinear modules of ``model`` in order."""
    return [m for m in model.modules() if isinstance(m, DelayedLinear)]


def set_sigma(model: nn.Module, sigma: float) -> None:
    """Set the kernel width (steps) of every DelayedLinear in ``model``."""
    for m in delayed_layers(model):
        m.set_sigma(sigma)


def round_delays(model: nn.Module) -> nn.Module:
    """Round every DelayedLinear of ``model`` to integer delays (in place); returns the model."""
    for m in delayed_layers(model):
        m.round_delays_()
    return model


def sigma_at(epoch: int, sigma_init: float, sigma_final: float, decay_epochs: int) -> float:
    """Kernel width (steps) after ``epoch`` completed epochs: exponential decay from sigma_init
    to sigma_final over ``decay_epochs`` epochs, then constant (the paper's schedule)."""
    if not (sigma_init > 0 and sigma_final > 0):
        raise ConfigError(f"sigma_init and sigma_final must be > 0 steps, got {sigma_init!r}, {sigma_final!r}")
    if not isinstance(decay_epochs, int) or decay_epochs < 1:
        raise ConfigError(f"sigma decay_epochs must be a positive integer, got {decay_epochs!r}")
    f = min(max(epoch, 0), decay_epochs) / decay_epochs
    return float(sigma_init) * (float(sigma_final) / float(sigma_init)) ** f


class SigmaSchedule:
    """Kernel width schedule over epochs for the DelayedLinear layers of a model (``sigma_at``);
    ``finish()`` rounds the delays.  Call ``step()`` once at the end of every epoch, like a
    torch LR scheduler.
    """

    def __init__(self, model: nn.Module, sigma_init: float, sigma_final: float, decay_epochs: int) -> None:
        sigma_at(0, sigma_init, sigma_final, decay_epochs)  # validates
        self.layers = delayed_layers(model)
        if not self.layers:
            raise ConfigError("SigmaSchedule: the model has no DelayedLinear layer")
        self.sigma_init, self.sigma_final, self.decay_epochs = float(sigma_init), float(sigma_final), decay_epochs
        self.epoch = 0
        self._apply()

    @property
    def sigma(self) -> float:
        """The width in force now (steps)."""
        return sigma_at(self.epoch, self.sigma_init, self.sigma_final, self.decay_epochs)

    def _apply(self) -> None:
        for m in self.layers:
            if not m.rounded:
                m.set_sigma(self.sigma)

    def step(self) -> float:
        """Advance one epoch; returns the new sigma."""
        self.epoch += 1
        self._apply()
        return self.sigma

    def finish(self) -> None:
        """Round all delays to integers (end of training)."""
        for m in self.layers:
            m.round_delays_()

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self._apply()
