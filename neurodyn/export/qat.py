"""Quantization-aware fine-tuning: the model trains with the chip's rounding in its forward pass.

``qat(model, fmt, calib=x)`` quantizes the model once to fix each layer's state scale
(the same ``quantize`` that exports it), then attaches fake quantization in place:

- every Linear feeding a neuron (and a Recurrent's weights) gets a torch parametrization
  whose forward value is what the chip will use: ``(gain * W)`` rounded to the format's
  mantissa with the layer's shared exponent (chosen anew from the current weights, as
  ``quantize`` does), divided by the gain again (the neuron multiplies it back); the bias
  likewise;
- every neuron's ``coefficients()`` returns decays rounded to units of 2**-frac_bits and
  thresholds / rest / reset potentials rounded to the layer's state units.

Rounding passes gradients straight through (straight-through estimator:
``x + (round(x) - x).detach()``).  Train as usual, then ``handle.quantize(calib)`` gives the
integer network with the same scales, and ``handle.remove()`` restores plain modules
(keeping the trained float weights).
"""
from __future__ import annotations

import types

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError
from ..nn.neurons import SpikingNeuron
from ..nn.recurrent import Recurrent
from .fixed_point import FixedPointFormat, get_format, mantissa_range, shared_exponent
from .int_step import COEF_KINDS, check_model
from .quantize import QuantizedNetwork, quantize


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero forward, identity backward."""
    r = torch.sign(x) * torch.floor(x.abs() + 0.5)
    return x + (r - x).detach()


def fake_mantissa(x: torch.Tensor, scale: float, bits: int, exp_range: tuple[int, int], signed: bool = True
                  ) -> torch.Tensor:
    """x (float units) rounded as the chip stores it: a ``bits``-bit mantissa with one shared
    exponent at state scale ``scale`` (as ``fixed_point.mantissa_exponent``), back in float units."""
    lo, hi = mantissa_range(bits, signed)
    peak = float(x.detach().abs().max()) * scale if x.numel() else 0.0
    step = float(1 << shared_exponent(peak, bits, exp_range, signed)) / scale
    m = _ste_round(x / step)
    m = m + (m.clamp(lo, hi) - m).detach()
    return m * step


class _FakeQuantWeight(nn.Module):
    """Parametrization: W [N_out, N_in] -> fake-quantized (gain-folded) weight, divided by the gain."""

    def __init__(self, neuron: SpikingNeuron, scale: float, bits: int, exp_range: tuple[int, int]) -> None:
        super().__init__()
        object.__setattr__(self, "_neuron", neuron)   # not a submodule: the neuron is registered elsewhere
        self.scale, self.bits, self.exp_range = scale, bits, exp_range

    def gain(self, like: torch.Tensor) -> torch.Tensor:
        nrn = self._neuron
        coefs = type(nrn).coefficients(nrn)
        g = coefs[nrn.model.coefs.index("gain")].detach().to(like)
        return torch.broadcast_to(g, (like.shape[0],))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        g = self.gain(w).reshape((-1,) + (1,) * (w.dim() - 1))
        return fake_mantissa(w * g, self.scale, self.bits, self.exp_range) / g


def _fq_coefficients(nrn: SpikingNeuron, scale: float, fmt: FixedPointFormat):
    def coefficients(self) -> tuple[torch.Tensor, ...]:
        out = []
        for name, c in zip(self.model.coefs, type(self).coefficients(self)):
            kind = COEF_KINDS[name]
            if name == "gain" or kind == "flag":
                out.append(c)
            elif kind == "fraction":
                q = _ste_round(c * fmt.one).clamp(0, fmt.one) / fmt.one
                out.append(q)
            elif name == "threshold":
                out.append(fake_mantissa(c, scale, fmt.threshold_bits, fmt.threshold_exp, signed=False))
            else:
                out.append(_ste_round(c * scale) / scale)
        return tuple(out)

    return types.MethodType(coefficients, nrn)


def _layer_modules(model: nn.Module) -> list[tuple[nn.Linear, nn.Linear | None, SpikingNeuron]]:
    """(feed-forward Linear, recurrent Linear or None, neuron) per layer, in core.Network's order."""
    mods = list(model) if isinstance(model, nn.Sequential) else [model]
    out, pending = [], None
    for m in mods:
        if isinstance(m, nn.Linear):
            pending = m
        elif isinstance(m, SpikingNeuron) and pending is not None:
            out.append((pending, None, m))
            pending = None
        elif isinstance(m, Recurrent):
            out.append((m.ff, m.rec, m.neuron))
    return out


class QAT:
    """Handle on a model with fake quantization attached (see the module docstring)."""

    def __init__(self, model: nn.Module, fmt: str | FixedPointFormat = "loihi", calib=None, input_max: float = 1.0,
                 ) -> None:
        self.model, self.fmt = model, get_format(fmt)
        q = quantize(model, self.fmt, calib=calib, input_max=input_max)
        self.log2_scales = q.log2_scales
        self.layers = _layer_modules(model)
        if len(self.layers) != len(self.log2_scales):
            raise ConfigError("qat: could not pair every neuron with its Linear layer")
        fmt_ = self.fmt
        for (ff, rec, nrn), k in zip(self.layers, self.log2_scales):
            check_model(nrn.model)
            s = 2.0 ** k
            parametrize.register_parametrization(ff, "weight", _FakeQuantWeight(nrn, s, fmt_.weight_bits, fmt_.weight_exp))
            if ff.bias is not None:
                parametrize.register_parametrization(ff, "bias", _FakeQuantWeight(nrn, s, fmt_.bias_bits, fmt_.bias_exp))
            if rec is not None:
                parametrize.register_parametrization(rec, "weight",
                                                     _FakeQuantWeight(nrn, s, fmt_.weight_bits, fmt_.weight_exp))
            nrn.coefficients = _fq_coefficients(nrn, s, fmt_)

    def quantize(self, calib=None, delays=None) -> QuantizedNetwork:
        """The integer network of the current weights, at the scales the fine-tuning used."""
        return quantize(self.model, self.fmt, calib=calib, delays=delays, log2_scales=self.log2_scales)

    def remove(self) -> nn.Module:
        """Detach the fake quantization; the float weights keep their trained values."""
        for ff, rec, nrn in self.layers:
            for m in (ff, rec):
                if m is not None and parametrize.is_parametrized(m):
                    for name in list(m.parametrizations.keys()):
                        parametrize.remove_parametrizations(m, name, leave_parametrized=False)
            if "coefficients" in vars(nrn):
                del nrn.coefficients
        return self.model

    def __enter__(self) -> "QAT":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def qat(model: nn.Module, fmt: str | FixedPointFormat = "loihi", calib=None, input_max: float = 1.0) -> QAT:
    """Attach fake quantization to ``model`` in place (see the module docstring); returns the handle."""
    return QAT(model, fmt, calib=calib, input_max=input_max)


__all__ = ["QAT", "fake_mantissa", "qat"]
