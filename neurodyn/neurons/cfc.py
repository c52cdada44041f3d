"""Closed-form continuous-time (CfC) cells (Hasani et al. 2022, Nature Machine Intelligence), defined once.

CfC replaces the LTC ODE by an approximation of its closed-form solution, so one step costs a
few dense layers whatever the elapsed time ``ts``.  With ``z = backbone([x, h])`` (a stack of
``Linear -> activation`` layers, or ``[x, h]`` itself with no backbone)::

    "default":  h' = tanh(ff1 z) (1 - sigmoid(ta(z) ts + tb(z))) + sigmoid(ta(z) ts + tb(z)) tanh(ff2 z)
    "no_gate":  h' = tanh(ff1 z) + sigmoid(ta(z) ts + tb(z)) tanh(ff2 z)
    "pure":     h' = A - A exp(-ts (|w_tau| + |ff1 z|)) (ff1 z)       (direct solution, eq. 10 of the paper)

``ts`` is the elapsed time of the step in the data's time unit (ncps: 1.0 per sample), a float
or per-sample ``[B]`` / ``[B, 1]``.  This is exactly ``ncps.torch.CfCCell.forward``; note its
quirk, kept here: backbone dropout follows every backbone layer except the first.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Union

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError

Tensor = torch.Tensor

CFC_MODES = ("default", "pure", "no_gate")


def lecun_tanh(x: Tensor) -> Tensor:
    """LeCun's scaled tanh ``1.7159 tanh(0.666 x)`` (ncps ``LeCun``)."""
    return 1.7159 * torch.tanh(0.666 * x)


CFC_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "lecun_tanh": lecun_tanh,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "silu": F.silu,
    "gelu": F.gelu,
}


class CfCParams(NamedTuple):
    """Parameters of a CfC cell with ``F`` inputs, ``H`` hidden units, backbone width ``U``.

    ``C`` (the width that feeds the heads) is ``U``, or ``F + H`` without a backbone.
    Unused heads are None: ff2/time_a/time_b in "pure" mode, w_tau/A otherwise.
    """

    backbone: tuple[tuple[Tensor, Tensor], ...]  # ((W [U, F+H], b [U]), (W [U, U], b [U]), ...)
    ff1_w: Tensor                       # [H, C]
    ff1_b: Tensor                       # [H]
    ff2_w: Optional[Tensor] = None      # [H, C]
    ff2_b: Optional[Tensor] = None      # [H]
    time_a_w: Optional[Tensor] = None   # [H, C]  time-gate slope (per unit of ts)
    time_a_b: Optional[Tensor] = None   # [H]
    time_b_w: Optional[Tensor] = None   # [H, C]  time-gate offset
    time_b_b: Optional[Tensor] = None   # [H]
    w_tau: Optional[Tensor] = None      # [H]     "pure": base decay rate (1 / time unit)
    A: Optional[Tensor] = None          # [H]     "pure": asymptote
    mask: Optional[Tensor] = None       # [H, C]  0/1 sparsity of ff1 and ff2 (ncps sparsity_mask.T)

    @property
    def hidden(self) -> int:
        return self.ff1_w.shape[0]

    @property
    def in_features(self) -> int:
        first = self.backbone[0][0] if self.backbone else self.ff1_w
        return first.shape[1] - self.hidden


def head_names(mode: str) -> tuple[str, ...]:
    """The parameter names of CfC ``mode`` (ConfigError for an unknown mode)."""
    if mode not in CFC_MODES:
        raise ConfigError(f"unknown CfC mode '{mode}'; choose one of {list(CFC_MODES)}")
    if mode == "pure":
        return ("ff1_w", "ff1_b", "w_tau", "A")
    return ("ff1_w", "ff1_b", "ff2_w", "ff2_b", "time_a_w", "time_a_b", "time_b_w", "time_b_b")


def check_cfc_params(p: CfCParams, mode: str = "default", finite: bool = True) -> None:
    """Raise ShapeError if ``p`` is inconsistent for ``mode``, ConfigError if a value is NaN/inf."""
    if not isinstance(p, CfCParams):
        raise ConfigError(f"expected CfCParams, got {type(p).__name__}")
    heads = head_names(mode)
    H = p.ff1_w.shape[0]
    named: list[tuple[str, Tensor, tuple]] = []
    width = None
    for i, (W, b) in enumerate(p.backbone):
        cols = W.shape[1] if width is None else width
        named += [(f"backbone[{i}].weight", W, (W.shape[0], cols)), (f"backbone[{i}].bias", b, (W.shape[0],))]
        width = W.shape[0]
    C = p.ff1_w.shape[1] if width is None else width
    for name in heads:
        shape = {"ff1_b": (H,), "ff2_b": (H,), "time_a_b": (H,), "time_b_b": (H,), "w_tau": (H,), "A": (H,)}.get(name, (H, C))
        named.append((name, getattr(p, name), shape))
    if p.mask is not None:
        named.append(("mask", p.mask, (H, C)))
    dtype = p.ff1_w.dtype
    for name, t, shape in named:
        if not isinstance(t, Tensor):
            raise ShapeError(f"CfCParams.{name} must be a tensor of shape {list(shape)} for mode '{mode}'")
        if tuple(t.shape) != tuple(shape):
            raise ShapeError(f"CfCParams.{name} must have shape {list(shape)}, got {list(t.shape)}")
        if not t.is_floating_point() or t.dtype != dtype:
            raise ShapeError(f"CfCParams.{name} must be a floating tensor of dtype {dtype}, got {t.dtype}")
        if finite and not bool(torch.isfinite(t).all()):
            raise ConfigError(f"CfCParams.{name} contains NaN or inf")


def init_cfc_params(in_features: int, hidden: int, *, mode: str = "default", backbone_units: int = 128,
                    backbone_layers: int = 1, mask: Tensor | None = None,
                    generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float32) -> CfCParams:
    """CfC parameters drawn as ncps ``CfCCell`` draws them: every 2-D weight (w_tau and A too,
    stored there as [1, H]) Xavier-uniform, biases as ``nn.Linear`` (U(+-1/sqrt(fan_in)))."""
    head_names(mode)
    for name, val in (("in_features", in_features), ("hidden", hidden), ("backbone_units", backbone_units)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ConfigError(f"{name} must be a positive int, got {val!r}")
    if isinstance(backbone_layers, bool) or not isinstance(backbone_layers, int) or backbone_layers < 0:
        raise ConfigError(f"backbone_layers must be an int >= 0, got {backbone_layers!r}")
    g = generator

    def xavier(rows: int, cols: int) -> Tensor:
        a = math.sqrt(6.0 / (rows + cols))
        return (torch.rand(rows, cols, generator=g, dtype=dtype) * 2 - 1) * a

    def bias(n: int, fan_in: int) -> Tensor:
        a = 1.0 / math.sqrt(fan_in)
        return (torch.rand(n, generator=g, dtype=dtype) * 2 - 1) * a

    backbone = []
    width = in_features + hidden
    for _ in range(backbone_layers):
        backbone.append((xavier(backbone_units, width), bias(backbone_units, width)))
        width = backbone_units
    C = width
    heads = {}
    for name in ("ff1", "ff2", "time_a", "time_b") if mode != "pure" else ("ff1",):
        heads[f"{name}_w"] = xavier(hidden, C)
        heads[f"{name}_b"] = bias(hidden, C)
    if mode == "pure":
        heads["w_tau"] = xavier(1, hidden)[0]
        heads["A"] = xavier(1, hidden)[0]
    if mask is not None:
        mask = torch.as_tensor(mask).to(dtype)
    p = CfCParams(backbone=tuple(backbone), mask=mask, **heads)
    check_cfc_params(p, mode)
    return p


def _ts_column(ts: Union[float, Tensor], batch: int, like: Tensor) -> Union[float, Tensor]:
    if isinstance(ts, Tensor):
        if not ts.is_floating_point():
            raise ShapeError(f"ts must be a floating tensor, got {ts.dtype}")
        if ts.dim() == 0:
            return ts.to(like.dtype)
        if ts.dim() == 1 and ts.shape[0] == batch:
            return ts.to(like.dtype).unsqueeze(-1)
        if ts.dim() == 2 and tuple(ts.shape) == (batch, 1):
            return ts.to(like.dtype)
        raise ShapeError(f"ts must be a float or a tensor of shape [] / [{batch}] / [{batch}, 1], got {list(ts.shape)}")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise ConfigError(f"ts must be a finite float or a tensor, got {ts!r}")
    return float(ts)


def cfc_step(x: Tensor, h: Tensor, p: CfCParams, ts: Union[float, Tensor] = 1.0, *, mode: str = "default",
             activation: str = "lecun_tanh", dropout: float = 0.0, training: bool = False) -> Tensor:
    """One CfC step: ``x [B, F]``, ``h [B, H]``, elapsed ``ts`` (float or ``[B]`` / ``[B, 1]``) -> ``h_new [B, H]``.

    ``activation`` names the backbone nonlinearity (``CFC_ACTIVATIONS``); ``dropout`` is applied
    (when ``training``) after backbone layers 2.. as in ncps.  Matches ``ncps.torch.CfCCell``.
    """
    head_names(mode)
    try:
        act = CFC_ACTIVATIONS[activation]
    except KeyError:
        raise ConfigError(f"unknown CfC activation '{activation}'; choose one of {sorted(CFC_ACTIVATIONS)}") from None
    H = p.hidden
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != p.in_features:
        raise ShapeError(f"cfc_step expects x of shape [B, {p.in_features}], "
                         f"got {list(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not isinstance(h, Tensor) or tuple(h.shape) != (x.shape[0], H):
        raise ShapeError(f"cfc_step expects h of shape [{x.shape[0]}, {H}], "
                         f"got {list(h.shape) if isinstance(h, Tensor) else type(h).__name__}")
    if not x.is_floating_point() or not h.is_floating_point():
        raise ShapeError(f"cfc_step expects floating x and h, got {x.dtype} and {h.dtype}")
    ts = _ts_column(ts, x.shape[0], x)

    z = torch.cat([x, h], 1)
    for i, (W, b) in enumerate(p.backbone):
        z = act(F.linear(z, W, b))
        if i > 0 and dropout > 0.0:
            z = F.dropout(z, dropout, training)
    ff1 = F.linear(z, p.ff1_w if p.mask is None else p.ff1_w * p.mask, p.ff1_b)
    if mode == "pure":
        return -p.A * torch.exp(-ts * (torch.abs(p.w_tau) + torch.abs(ff1))) * ff1 + p.A
    ff2 = F.linear(z, p.ff2_w if p.mask is None else p.ff2_w * p.mask, p.ff2_b)
    ff1 = torch.tanh(ff1)
    ff2 = torch.tanh(ff2)
    t_a = F.linear(z, p.time_a_w, p.time_a_b)
    t_b = F.linear(z, p.time_b_w, p.time_b_b)
    t_interp = torch.sigmoid(t_a * ts + t_b)
    if mode == "no_gate":
        return ff1 + t_interp * ff2
    return ff1 * (1.0 - t_interp) + t_interp * ff2


__all__ = ["CfCParams", "CFC_MODES", "CFC_ACTIVATIONS", "lecun_tanh", "check_cfc_params", "init_cfc_params",
           "cfc_step"]
