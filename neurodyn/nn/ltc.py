"""Multi-step LTC and CfC layers: thin ``nn.Module`` wrappers over ``neurons.ltc`` / ``neurons.cfc``.

Both take ``x [T, B, F]`` and return ``[T, B, out]``; optional initial state ``[B, H]``, optional
per-step elapsed times (float, ``[T]`` or ``[T, B]``: irregularly sampled sequences) and
``return_state=True`` to also get the last state.  ``from_ncps`` copies an ``ncps.torch``
cell (or its sequence wrapper) so that both compute the same numbers.  The time loop here is
the torch reference path.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from ..neurons.cfc import CFC_ACTIVATIONS, CfCParams, cfc_step, check_cfc_params, init_cfc_params, head_names
from ..neurons.ltc import (LTC_CONSTRAINTS, LTCParams, check_ltc_params, clip_ltc_params_, constrain_ltc_params,
                           init_ltc_params, ltc_output, ltc_sensory, ltc_unfold)

Tensor = torch.Tensor
LTC_BACKENDS = ("torch", "numba")


def _check_sequence(name: str, x: Tensor, features: int) -> None:
    if not isinstance(x, Tensor):
        raise ShapeError(f"{name} expects x as a tensor [T, B, {features}], got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != features:
        raise ShapeError(f"{name} expects x of shape [T, B, {features}], got {list(x.shape)}")
    if not x.is_floating_point():
        raise ShapeError(f"{name} expects a floating x [T, B, {features}], got dtype {x.dtype}")


def _initial_state(name: str, state: Optional[Tensor], x: Tensor, hidden: int) -> Tensor:
    B = x.shape[1]
    if state is None:
        return x.new_zeros((B, hidden))
    if not isinstance(state, Tensor) or tuple(state.shape) != (B, hidden):
        got = list(state.shape) if isinstance(state, Tensor) else type(state).__name__
        raise ShapeError(f"{name} expects state of shape [{B}, {hidden}], got {got}")
    if not state.is_floating_point():
        raise ShapeError(f"{name} expects a floating state [{B}, {hidden}], got dtype {state.dtype}")
    return state.to(x.dtype)


def _elapsed_steps(name: str, elapsed, x: Tensor, positive: bool) -> Union[float, Tensor]:
    """Validated elapsed times: one float for all steps, or a ``[T, B]`` tensor of x's dtype."""
    T, B = x.shape[0], x.shape[1]
    if elapsed is None:
        return 1.0
    if isinstance(elapsed, Tensor):
        if not elapsed.is_floating_point():
            raise ShapeError(f"{name} expects floating elapsed times, got dtype {elapsed.dtype}")
        if elapsed.dim() == 0:
            e = elapsed.expand(T, B)
        elif elapsed.dim() == 1 and elapsed.shape[0] == T:
            e = elapsed[:, None].expand(T, B)
        elif elapsed.dim() == 2 and tuple(elapsed.shape) == (T, B):
            e = elapsed
        elif elapsed.dim() == 3 and tuple(elapsed.shape) == (T, B, 1):
            e = elapsed[..., 0]
        else:
            raise ShapeError(f"{name} expects elapsed as a float or a tensor of shape [{T}] or [{T}, {B}], "
                             f"got {list(elapsed.shape)}")
        bad = ~torch.isfinite(e) | (e <= 0) if positive else ~torch.isfinite(e)
        if bool(bad.any()):
            raise ConfigError(f"{name}: elapsed times must be {'positive and ' if positive else ''}finite")
        return e.to(x.dtype)
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not math.isfinite(elapsed) \
            or (positive and elapsed <= 0):
        raise ConfigError(f"{name}: elapsed must be a {'positive ' if positive else ''}finite float or a tensor, "
                          f"got {elapsed!r}")
    return float(elapsed)


class LTC(nn.Module):
    """Liquid time-constant layer: ``x [T, B, in_features] -> y [T, B, out_features]``.

    ``hidden`` neurons, of which the first ``out_features`` (default all) are read out through
    ``output_mapping``; ``unfolds`` semi-implicit sub-steps per step, ``epsilon`` division guard
    (ncps ``ode_unfolds``, ``epsilon``).  ``constraint``: ``"softplus"`` (positivity by softplus at
    run time, ncps ``implicit_param_constraints=True``) or ``"clip"`` (raw values; call
    ``apply_weight_constraints()`` after each optimizer step, as ncps ``LTCCell`` by default).
    ``adjacency [H, H]`` / ``sensory_adjacency [F, H]``: signed sparse wiring (0 = no synapse).
    ``backend``: ``"torch"`` (reference loop over time) or ``"numba"`` (``kernels.ltc_numba``: all T
    steps and their backward in one fused CPU kernel call).
    """

    _TRAINED = ("gleak", "vleak", "cm", "w", "mu", "sigma", "erev",
                "sensory_w", "sensory_mu", "sensory_sigma", "sensory_erev")

    def __init__(self, in_features: int, hidden: int, out_features: Optional[int] = None, *, unfolds: int = 6,
                 epsilon: float = 1e-8, constraint: str = "softplus", input_mapping: str = "affine",
                 output_mapping: str = "affine", adjacency: Optional[Tensor] = None,
                 sensory_adjacency: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                 backend: str = "torch") -> None:
        super().__init__()
        if backend not in LTC_BACKENDS:
            raise ConfigError(f"unknown LTC backend '{backend}'; choose one of {list(LTC_BACKENDS)}")
        if constraint not in LTC_CONSTRAINTS:
            raise ConfigError(f"unknown LTC constraint '{constraint}'; choose one of {list(LTC_CONSTRAINTS)}")
        if isinstance(unfolds, bool) or not isinstance(unfolds, int) or unfolds < 1:
            raise ConfigError(f"unfolds must be a positive int, got {unfolds!r}")
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon >= 0):
            raise ConfigError(f"epsilon must be a finite float >= 0, got {epsilon!r}")
        p = init_ltc_params(in_features, hidden, out_features, adjacency=adjacency,
                            sensory_adjacency=sensory_adjacency, input_mapping=input_mapping,
                            output_mapping=output_mapping, generator=generator)
        self.in_features, self.hidden, self.out_features = in_features, hidden, p.out_features
        self.unfolds, self.epsilon, self.constraint, self.backend = unfolds, float(epsilon), constraint, backend
        self.input_mapping, self.output_mapping = input_mapping, output_mapping
        for name in self._TRAINED:
            setattr(self, name, nn.Parameter(getattr(p, name)))
        self.register_buffer("mask", p.mask)
        self.register_buffer("sensory_mask", p.sensory_mask)
        for side, mapping in (("input", input_mapping), ("output", output_mapping)):
            for suffix, trained in (("w", mapping in ("affine", "linear")), ("b", mapping == "affine")):
                t = getattr(p, f"{side}_{suffix}")
                if trained:
                    setattr(self, f"{side}_{suffix}", nn.Parameter(t))
                else:
                    self.register_buffer(f"{side}_{suffix}", t)

    def raw_params(self) -> LTCParams:
        """The stored values (before the positivity constraint)."""
        return LTCParams(**{f: getattr(self, f) for f in LTCParams._fields})

    def params(self) -> LTCParams:
        """The values the math uses (``constrain_ltc_params`` of the stored ones)."""
        return constrain_ltc_params(self.raw_params(), self.constraint)

    def apply_weight_constraints(self) -> None:
        """With ``constraint="clip"``: clamp gleak, cm, w, sensory_w at 0 in place (ncps); else nothing."""
        if self.constraint == "clip":
            clip_ltc_params_(self.raw_params())

    def forward(self, x: Tensor, state: Optional[Tensor] = None,
                elapsed: Union[None, float, Tensor] = None, return_state: bool = False):
        """``x [T, B, F]`` -> ``y [T, B, M]`` (and the last state ``[B, H]`` if ``return_state``).

        ``state``: initial potentials ``[B, H]`` (default 0); ``elapsed``: step lengths, a float
        or ``[T]`` / ``[T, B]`` (default 1.0 per step).
        """
        _check_sequence("LTC", x, self.in_features)
        v = _initial_state("LTC", state, x, self.hidden)
        steps = _elapsed_steps("LTC", elapsed, x, positive=True)
        check_ltc_params(self.raw_params())
        p = self.params()
        if p.gleak.dtype != x.dtype:
            raise ShapeError(f"LTC parameters are {p.gleak.dtype} but x is {x.dtype}; convert one of them")
        if self.backend == "numba":
            from ..kernels.ltc_numba import ltc_numba  # all T steps in one fused kernel call
            vs = ltc_numba(x, v, p, steps, self.unfolds, self.epsilon)
            v = vs[-1]
        else:
            out = []
            for t in range(x.shape[0]):
                e = steps[t].unsqueeze(-1) if isinstance(steps, Tensor) else steps
                v = ltc_unfold(v, ltc_sensory(x[t], p), p, e, self.unfolds, self.epsilon)
                out.append(v)
            vs = torch.stack(out)
        y = ltc_output(vs, p)
        return (y, v) if return_state else y

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.hidden}, out_features={self.out_features}, unfolds={self.unfolds}, "
                f"constraint='{self.constraint}', backend='{self.backend}'")

    @classmethod
    def from_ncps(cls, cell, backend: str = "torch") -> "LTC":
        """Copy an ``ncps.torch.LTCCell`` (or ``ncps.torch.LTC`` without mixed memory): same numbers."""
        if hasattr(cell, "rnn_cell"):
            if getattr(cell, "use_mixed", False):
                raise ConfigError("from_ncps: LTC with mixed_memory=True (an LSTM side cell) is not supported")
            cell = cell.rnn_cell
        if type(cell).__name__ != "LTCCell" or not hasattr(cell, "_params"):
            raise ConfigError(f"from_ncps expects an ncps.torch.LTCCell or LTC, got {type(cell).__name__}")
        P = cell._params
        mapping = {"gleak": "gleak", "vleak": "vleak", "cm": "cm", "w": "w", "mu": "mu", "sigma": "sigma",
                   "erev": "erev", "mask": "sparsity_mask", "sensory_w": "sensory_w", "sensory_mu": "sensory_mu",
                   "sensory_sigma": "sensory_sigma", "sensory_erev": "sensory_erev",
                   "sensory_mask": "sensory_sparsity_mask", "input_w": "input_w", "input_b": "input_b",
                   "output_w": "output_w", "output_b": "output_b"}

        def norm(m: str) -> str:
            return m if m in ("affine", "linear") else "none"

        F_in, H, M = int(cell.sensory_size), int(cell.state_size), int(cell.motor_size)
        mod = cls(F_in, H, M, unfolds=int(cell._ode_unfolds), epsilon=float(cell._epsilon),
                  constraint="softplus" if cell._implicit_param_constraints else "clip",
                  input_mapping=norm(cell._input_mapping), output_mapping=norm(cell._output_mapping),
                  backend=backend)
        dtype = P["gleak"].dtype
        mod.to(dtype=dtype, device=P["gleak"].device)
        with torch.no_grad():
            for ours, theirs in mapping.items():
                if theirs in P:
                    getattr(mod, ours).copy_(P[theirs].detach())
        check_ltc_params(mod.raw_params())
        return mod


_NCPS_ACTIVATION = {"LeCun": "lecun_tanh", "Tanh": "tanh", "ReLU": "relu", "SiLU": "silu", "GELU": "gelu"}


class CfC(nn.Module):
    """Closed-form continuous-time layer: ``x [T, B, in_features] -> [T, B, out_features or hidden]``.

    ``mode`` "default" / "pure" / "no_gate"; backbone of ``backbone_layers`` Linear layers of
    ``backbone_units`` with ``activation`` (``CFC_ACTIVATIONS``) and ``backbone_dropout`` (after layers
    2.., as ncps); ``mask [H, C]`` optional 0/1 sparsity of the ff1/ff2 heads; ``out_features``
    adds a Linear projection of the hidden state (ncps ``proj_size``).
    """

    def __init__(self, in_features: int, hidden: int, out_features: Optional[int] = None, *, mode: str = "default",
                 activation: str = "lecun_tanh", backbone_units: int = 128, backbone_layers: int = 1,
                 backbone_dropout: float = 0.0, mask: Optional[Tensor] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        if activation not in CFC_ACTIVATIONS:
            raise ConfigError(f"unknown CfC activation '{activation}'; choose one of {sorted(CFC_ACTIVATIONS)}")
        if not (isinstance(backbone_dropout, (int, float)) and 0.0 <= backbone_dropout < 1.0):
            raise ConfigError(f"backbone_dropout must be in [0, 1), got {backbone_dropout!r}")
        p = init_cfc_params(in_features, hidden, mode=mode, backbone_units=backbone_units,
                            backbone_layers=backbone_layers, mask=mask, generator=generator)
        self.in_features, self.hidden, self.mode, self.activation = in_features, hidden, mode, activation
        self.backbone_dropout = float(backbone_dropout)
        self.backbone_w = nn.ParameterList([nn.Parameter(W) for W, _ in p.backbone])
        self.backbone_b = nn.ParameterList([nn.Parameter(b) for _, b in p.backbone])
        self._head_names = head_names(mode)
        for name in self._head_names:
            setattr(self, name, nn.Parameter(getattr(p, name)))
        self.register_buffer("mask", p.mask)
        if out_features is not None and (isinstance(out_features, bool) or not isinstance(out_features, int)
                                         or out_features < 1):
            raise ConfigError(f"out_features must be a positive int or None, got {out_features!r}")
        self.proj = None if out_features is None else nn.Linear(hidden, out_features)
        self.out_features = hidden if out_features is None else out_features

    def params(self) -> CfCParams:
        return CfCParams(backbone=tuple(zip(self.backbone_w, self.backbone_b)), mask=self.mask,
                         **{n: getattr(self, n) for n in self._head_names})

    def forward(self, x: Tensor, state: Optional[Tensor] = None,
                elapsed: Union[None, float, Tensor] = None, return_state: bool = False):
        """``x [T, B, F]`` -> ``[T, B, out]`` (and the last hidden state ``[B, H]`` if ``return_state``).

        ``elapsed``: step lengths ``ts``, a float or ``[T]`` / ``[T, B]`` (default 1.0).
        """
        _check_sequence("CfC", x, self.in_features)
        h = _initial_state("CfC", state, x, self.hidden)
        steps = _elapsed_steps("CfC", elapsed, x, positive=False)
        p = self.params()
        check_cfc_params(p, self.mode)
        if p.ff1_w.dtype != x.dtype:
            raise ShapeError(f"CfC parameters are {p.ff1_w.dtype} but x is {x.dtype}; convert one of them")
        for name, t in (self.proj.named_parameters() if self.proj is not None else ()):
            if not bool(torch.isfinite(t).all()):
                raise ConfigError(f"CfC proj.{name} contains NaN or inf")
        hs = []
        for t in range(x.shape[0]):
            h = cfc_step(x[t], h, p, steps[t] if isinstance(steps, Tensor) else steps, mode=self.mode, activation=self.activation,
                         dropout=self.backbone_dropout, training=self.training)
            hs.append(h)
        y = torch.stack(hs)
        if self.proj is not None:
            y = self.proj(y)
        return (y, h) if return_state else y

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.hidden}, out_features={self.out_features}, mode='{self.mode}', "
                f"activation='{self.activation}', backbone_layers={len(self.backbone_w)}")

    @classmethod
    def from_ncps(cls, cell) -> "CfC":
        """Copy an ``ncps.torch.CfCCell`` (or ``ncps.torch.CfC`` without wiring/mixed memory, including its
        ``proj_size`` projection): same numbers."""
        fc = None
        if hasattr(cell, "rnn_cell"):
            if getattr(cell, "use_mixed", False):
                raise ConfigError("from_ncps: CfC with mixed_memory=True (an LSTM side cell) is not supported")
            fc = cell.fc if isinstance(cell.fc, nn.Linear) else None
            cell = cell.rnn_cell
        if type(cell).__name__ != "CfCCell":
            raise ConfigError(f"from_ncps expects an ncps.torch.CfCCell or CfC, got {type(cell).__name__}")
        layers = [m for m in cell.backbone] if cell.backbone is not None else []
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        acts = [type(m).__name__ for m in layers if not isinstance(m, (nn.Linear, nn.Dropout))]
        drops = [m.p for m in layers if isinstance(m, nn.Dropout)]
        activation = _NCPS_ACTIVATION.get(acts[0]) if acts else "lecun_tanh"
        if activation is None:
            raise ConfigError(f"from_ncps: unsupported backbone activation {acts[0]}")
        mask = None if cell.sparsity_mask is None else cell.sparsity_mask.detach().clone()
        mod = cls(cell.input_size, cell.hidden_size, None if fc is None else fc.out_features, mode=cell.mode,
                  activation=activation, backbone_units=linears[0].out_features if linears else 128,
                  backbone_layers=len(linears), backbone_dropout=drops[0] if drops else 0.0, mask=mask)
        mod.to(dtype=cell.ff1.weight.dtype, device=cell.ff1.weight.device)
        with torch.no_grad():
            for i, lin in enumerate(linears):
                mod.backbone_w[i].copy_(lin.weight)
                mod.backbone_b[i].copy_(lin.bias)
            heads = ("ff1",) if cell.mode == "pure" else ("ff1", "ff2", "time_a", "time_b")
            for name in heads:
                getattr(mod, f"{name}_w").copy_(getattr(cell, name).weight)
                getattr(mod, f"{name}_b").copy_(getattr(cell, name).bias)
            if cell.mode == "pure":
                mod.w_tau.copy_(cell.w_tau.reshape(-1))
                mod.A.copy_(cell.A.reshape(-1))
            if fc is not None:
                mod.proj.load_state_dict(fc.state_dict())
        check_cfc_params(mod.params(), mod.mode)
        return mod


__all__ = ["LTC", "CfC"]
