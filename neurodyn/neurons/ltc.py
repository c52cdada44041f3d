"""Liquid time-constant (LTC) neurons (Hasani et al. 2021, AAAI), defined once as pure torch functions.

The model (conductance-based, non-spiking). For hidden neuron ``i`` with potential ``v_i``,
recurrent presynaptic neurons ``j`` and (mapped) inputs ``u_k = input_w_k x_k + input_b_k``::

    cm_i dv_i/dt = gleak_i (vleak_i - v_i)
                 + sum_j  w_ji  s(v_j; mu_ji,  sigma_ji)  mask_ji  (erev_ji  - v_i)     recurrent
                 + sum_k sw_ki  s(u_k; smu_ki, ssigma_ki) smask_ki (serev_ki - v_i)     sensory
    s(v; mu, sigma) = sigmoid(sigma (v - mu))

Units: potentials (v, vleak, erev, mu) are dimensionless "volts" of the model, conductances
(gleak, w, sensory_w) per unit capacitance-time, cm a capacitance; time (``elapsed``) is in
whatever unit the data's time stamps use (ncps: 1.0 per sample).  Matrices are indexed
``[pre, post]``: ``w[j, i]`` is the synapse from neuron ``j`` (or input ``k``) onto ``i``.

The fused solver (``ltc_step``) is the one of the paper and of ``ncps.torch.LTCCell._ode_solver``:
the step of length ``elapsed`` is split into ``unfolds`` sub-steps ``dt = elapsed / unfolds``, each
a semi-implicit Euler step (synaptic gates from the old state, the ``- v_i`` terms implicit)::

    v <- (cm/dt v + gleak vleak + sum w s erev) / (cm/dt + gleak + sum w s + epsilon)

which is exactly the semi-implicit Euler step of ``ltc_rhs(..., epsilon)``; the sensory part is
computed once per step since the input is held constant over it.

Positivity (gleak, cm, w, sensory_w must be >= 0). ncps offers two ways, and so do we:

* ``"clip"`` (ncps ``LTCCell`` default, ``implicit_param_constraints=False``): the raw values are
  used as they are at run time; after each optimizer step the trainer clamps them at 0
  (ncps ``apply_weight_constraints``; here ``clip_ltc_params_`` / ``nn.LTC.apply_weight_constraints``).
* ``"softplus"`` (ncps ``implicit_param_constraints=True``, the default of ``ncps.torch.LTC``): the
  stored values are unconstrained and softplus maps them to positive ones at every call.

``constrain_ltc_params(raw, constraint)`` turns stored values into the values the math uses;
all other functions here take those effective values.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Union

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError

Tensor = torch.Tensor
Elapsed = Union[float, Tensor]

#: ncps ``LTCCell._init_ranges``: uniform init ranges of the stored values.
LTC_INIT_RANGES: dict[str, tuple[float, float]] = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "w": (0.001, 1.0),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
}
#: Fields that must be positive (softplus-mapped or clipped, see module docstring).
LTC_POSITIVE = ("gleak", "cm", "w", "sensory_w")
LTC_CONSTRAINTS = ("clip", "softplus")


class LTCParams(NamedTuple):
    """Parameters of an LTC layer with ``F`` inputs, ``H`` neurons and ``M <= H`` outputs.

    Matrices are ``[pre, post]``.  Masks are 0/1 (ncps: ``|adjacency|``); erev is ncps's
    polarity-initialised reversal potential (+1 excitatory, -1 inhibitory, trainable).
    """

    gleak: Tensor          # [H]    leak conductance (>= 0)
    vleak: Tensor          # [H]    leak reversal potential
    cm: Tensor             # [H]    membrane capacitance (>= 0)
    w: Tensor              # [H, H] max synaptic conductance (>= 0)
    mu: Tensor             # [H, H] gate midpoint (potential)
    sigma: Tensor          # [H, H] gate steepness (1 / potential)
    erev: Tensor           # [H, H] synaptic reversal potential
    mask: Tensor           # [H, H] 0/1 wiring
    sensory_w: Tensor      # [F, H] (>= 0)
    sensory_mu: Tensor     # [F, H]
    sensory_sigma: Tensor  # [F, H]
    sensory_erev: Tensor   # [F, H]
    sensory_mask: Tensor   # [F, H] 0/1 wiring
    input_w: Tensor        # [F]    input affine map u = input_w x + input_b
    input_b: Tensor        # [F]
    output_w: Tensor       # [M]    output map y = output_w v[:, :M] + output_b
    output_b: Tensor       # [M]

    @property
    def in_features(self) -> int:
        return self.sensory_w.shape[0]

    @property
    def hidden(self) -> int:
        return self.gleak.shape[0]

    @property
    def out_features(self) -> int:
        return self.output_w.shape[0]


# --------------------------------------------------------------------------- parameters

def check_ltc_params(p: LTCParams, finite: bool = True) -> None:
    """Raise ShapeError if the fields of ``p`` disagree in shape/dtype, ConfigError if any is NaN/inf."""
    if not isinstance(p, LTCParams):
        raise ConfigError(f"expected LTCParams, got {type(p).__name__}")
    F_in, H, M = p.in_features, p.hidden, p.out_features
    expect = {"gleak": (H,), "vleak": (H,), "cm": (H,), "w": (H, H), "mu": (H, H), "sigma": (H, H),
              "erev": (H, H), "mask": (H, H), "sensory_w": (F_in, H), "sensory_mu": (F_in, H),
              "sensory_sigma": (F_in, H), "sensory_erev": (F_in, H), "sensory_mask": (F_in, H),
              "input_w": (F_in,), "input_b": (F_in,), "output_w": (M,), "output_b": (M,)}
    if M > H:
        raise ShapeError(f"LTCParams: {M} outputs but only {H} neurons (outputs are v[:, :M])")
    dtype = p.gleak.dtype
    for name, shape in expect.items():
        t = getattr(p, name)
        if not isinstance(t, Tensor):
            raise ShapeError(f"LTCParams.{name} must be a tensor of shape {list(shape)}, got {type(t).__name__}")
        if tuple(t.shape) != shape:
            raise ShapeError(f"LTCParams.{name} must have shape {list(shape)} "
                             f"(F={F_in}, H={H}, M={M}), got {list(t.shape)}")
        if not t.is_floating_point() or t.dtype != dtype:
            raise ShapeError(f"LTCParams.{name} must be a floating tensor of dtype {dtype}, got {t.dtype}")
        if finite and not bool(torch.isfinite(t).all()):
            raise ConfigError(f"LTCParams.{name} contains NaN or inf")


def constrain_ltc_params(raw: LTCParams, constraint: str = "clip") -> LTCParams:
    """Effective parameters from stored ones: ``"softplus"`` maps gleak, cm, w, sensory_w through
    softplus (ncps implicit constraints); ``"clip"`` uses them as stored (ncps default; clamp them
    after each optimizer step with ``clip_ltc_params_``)."""
    if constraint == "clip":
        return raw
    if constraint == "softplus":
        return raw._replace(**{k: F.softplus(getattr(raw, k)) for k in LTC_POSITIVE})
    raise ConfigError(f"unknown LTC constraint '{constraint}'; choose one of {list(LTC_CONSTRAINTS)}")


@torch.no_grad()
def clip_ltc_params_(raw: LTCParams) -> None:
    """In place: clamp gleak, cm, w, sensory_w at 0 (ncps ``LTCCell.apply_weight_constraints``)."""
    for k in LTC_POSITIVE:
        getattr(raw, k).clamp_(min=0.0)


def _uniform(shape, name, generator, dtype) -> Tensor:
    lo, hi = LTC_INIT_RANGES[name]
    return torch.rand(shape, generator=generator, dtype=dtype) * (hi - lo) + lo


def _polarity(shape, generator) -> Tensor:
    # ncps FullyConnected: polarity drawn from [-1, 1, 1] (one third inhibitory).
    return torch.tensor([-1, 1, 1])[torch.randint(0, 3, shape, generator=generator)]


def init_ltc_params(in_features: int, hidden: int, out_features: int | None = None, *,
                    adjacency: Tensor | None = None, sensory_adjacency: Tensor | None = None,
                    input_mapping: str = "affine", output_mapping: str = "affine",
                    generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float32) -> LTCParams:
    """Stored LTC parameters drawn as ncps ``LTCCell`` draws them.

    ``adjacency [H, H]`` / ``sensory_adjacency [F, H]`` are signed wirings (+1, -1, 0 =
    no synapse), as ``ncps.wirings.Wiring.adjacency_matrix``; erev starts at the sign and the
    mask is ``|adjacency|``.  Without them the layer is fully connected with polarities drawn
    from {-1, +1, +1} (ncps ``FullyConnected``).  Mappings ("affine", "linear", "none") only
    document intent here: w starts at 1 and b at 0 in every case.
    """
    for name, val in (("in_features", in_features), ("hidden", hidden)):
        if not isinstance(val, int) or val < 1:
            raise ConfigError(f"{name} must be a positive int, got {val!r}")
    out_features = hidden if out_features is None else out_features
    if not isinstance(out_features, int) or not 1 <= out_features <= hidden:
        raise ConfigError(f"out_features must be an int in [1, hidden={hidden}], got {out_features!r}")
    for m in (input_mapping, output_mapping):
        if m not in ("affine", "linear", "none"):
            raise ConfigError(f"unknown LTC mapping '{m}'; choose 'affine', 'linear' or 'none'")
    g = generator
    if adjacency is None:
        adjacency = _polarity((hidden, hidden), g)
    if sensory_adjacency is None:
        sensory_adjacency = _polarity((in_features, hidden), g)
    adjacency = torch.as_tensor(adjacency)
    sensory_adjacency = torch.as_tensor(sensory_adjacency)
    if tuple(adjacency.shape) != (hidden, hidden):
        raise ShapeError(f"adjacency must have shape [{hidden}, {hidden}], got {list(adjacency.shape)}")
    if tuple(sensory_adjacency.shape) != (in_features, hidden):
        raise ShapeError(f"sensory_adjacency must have shape [{in_features}, {hidden}], "
                         f"got {list(sensory_adjacency.shape)}")
    H, Fi = hidden, in_features
    return LTCParams(
        gleak=_uniform((H,), "gleak", g, dtype),
        vleak=_uniform((H,), "vleak", g, dtype),
        cm=_uniform((H,), "cm", g, dtype),
        w=_uniform((H, H), "w", g, dtype),
        mu=_uniform((H, H), "mu", g, dtype),
        sigma=_uniform((H, H), "sigma", g, dtype),
        erev=adjacency.to(dtype),
        mask=adjacency.abs().to(dtype),
        sensory_w=_uniform((Fi, H), "sensory_w", g, dtype),
        sensory_mu=_uniform((Fi, H), "sensory_mu", g, dtype),
        sensory_sigma=_uniform((Fi, H), "sensory_sigma", g, dtype),
        sensory_erev=sensory_adjacency.to(dtype),
        sensory_mask=sensory_adjacency.abs().to(dtype),
        input_w=torch.ones(Fi, dtype=dtype), input_b=torch.zeros(Fi, dtype=dtype),
        output_w=torch.ones(out_features, dtype=dtype), output_b=torch.zeros(out_features, dtype=dtype),
    )


# --------------------------------------------------------------------------- the math

def synapse_sums(pre: Tensor, w: Tensor, mu: Tensor, sigma: Tensor, erev: Tensor, mask: Tensor
                 ) -> tuple[Tensor, Tensor]:
    """Sigmoid-gated synapses from ``pre [B, P]`` onto ``H`` neurons (all matrices ``[P, H]``).

    Returns ``(sum_j g_ji erev_ji, sum_j g_ji)``, both ``[B, H]``, with the conductance
    ``g_ji = w_ji sigmoid(sigma_ji (pre_j - mu_ji)) mask_ji`` (ncps operation order).
    """
    g = w * torch.sigmoid(sigma * (pre.unsqueeze(-1) - mu))
    g = g * mask
    return torch.sum(g * erev, dim=1), torch.sum(g, dim=1)


def ltc_map_inputs(x: Tensor, p: LTCParams) -> Tensor:
    """Input affine map ``u = input_w x + input_b``: ``[B, F] -> [B, F]``."""
    return x * p.input_w + p.input_b


def ltc_sensory(x: Tensor, p: LTCParams) -> tuple[Tensor, Tensor]:
    """Sensory synapse sums ``(numerator, conductance)``, each ``[B, H]``, for raw input ``x [B, F]``."""
    return synapse_sums(ltc_map_inputs(x, p), p.sensory_w, p.sensory_mu, p.sensory_sigma,
                        p.sensory_erev, p.sensory_mask)


def ltc_rhs(x: Tensor, v: Tensor, p: LTCParams, epsilon: float = 0.0) -> Tensor:
    """The LTC vector field ``dv/dt [B, H]`` (potential per unit time) at input ``x [B, F]``, state ``v [B, H]``.

    ``epsilon`` adds the fused solver's denominator guard as a tiny extra leak ``-epsilon v``, so
    that ``ltc_step(..., epsilon=e)`` is exactly the semi-implicit Euler method on
    ``ltc_rhs(..., epsilon=e)``; the model itself has ``epsilon = 0``.
    """
    s_num, s_den = ltc_sensory(x, p)
    r_num, r_den = synapse_sums(v, p.w, p.mu, p.sigma, p.erev, p.mask)
    num = p.gleak * p.vleak + (r_num + s_num)
    den = p.gleak + (r_den + s_den) + epsilon
    return (num - den * v) / p.cm


def _elapsed_column(elapsed: Elapsed, batch: int, like: Tensor) -> Elapsed:
    """Normalise ``elapsed`` (float, 0-d, [B] or [B, 1] tensor) to a float or a ``[B, 1]`` tensor."""
    if isinstance(elapsed, Tensor):
        if not elapsed.is_floating_point():
            raise ShapeError(f"elapsed must be a floating tensor, got {elapsed.dtype}")
        if elapsed.dim() == 0:
            return elapsed.to(like.dtype)
        if elapsed.dim() == 1 and elapsed.shape[0] == batch:
            return elapsed.to(like.dtype).unsqueeze(-1)
        if elapsed.dim() == 2 and tuple(elapsed.shape) == (batch, 1):
            return elapsed.to(like.dtype)
        raise ShapeError(f"elapsed must be a float or a tensor of shape [] / [{batch}] / [{batch}, 1], "
                         f"got {list(elapsed.shape)}")
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)):
        raise ConfigError(f"elapsed must be a float or a tensor, got {type(elapsed).__name__}")
    if not (elapsed > 0 and math.isfinite(elapsed)):
        raise ConfigError(f"elapsed must be positive and finite, got {elapsed}")
    return float(elapsed)


def ltc_unfold(v: Tensor, sensory: tuple[Tensor, Tensor], p: LTCParams, elapsed: Elapsed = 1.0,
               unfolds: int = 6, epsilon: float = 1e-8) -> Tensor:
    """The fused solver's ``unfolds`` semi-implicit sub-steps from ``v [B, H]`` given the sensory
    sums of this step (``ltc_sensory``); ``elapsed`` is a float or a ``[B, 1]`` tensor."""
    s_num, s_den = sensory
    cm_t = p.cm / (elapsed / unfolds)  # cm/dt is loop invariant
    gleak_vleak = p.gleak * p.vleak
    for _ in range(unfolds):
        r_num, r_den = synapse_sums(v, p.w, p.mu, p.sigma, p.erev, p.mask)
        numerator = cm_t * v + gleak_vleak + (r_num + s_num)
        denominator = cm_t + p.gleak + (r_den + s_den)
        v = numerator / (denominator + epsilon)
    return v


def ltc_step(x: Tensor, v: Tensor, p: LTCParams, elapsed: Elapsed = 1.0, unfolds: int = 6,
             epsilon: float = 1e-8) -> Tensor:
    """One LTC step of length ``elapsed``: ``x [B, F]``, ``v [B, H]`` -> ``v_new [B, H]``.

    ``p`` holds effective (positive) values, see ``constrain_ltc_params``.  ``elapsed`` (time
    units of the data) is a float or a per-sample tensor ``[B]`` / ``[B, 1]``; ``unfolds``
    semi-implicit sub-steps of ``elapsed / unfolds`` each (ncps ``ode_unfolds``), ``epsilon``
    guards the division.  Matches ``ncps.torch.LTCCell._ode_solver`` on mapped inputs.
    """
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != p.in_features:
        raise ShapeError(f"ltc_step expects x of shape [B, {p.in_features}], "
                         f"got {list(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not isinstance(v, Tensor) or tuple(v.shape) != (x.shape[0], p.hidden):
        raise ShapeError(f"ltc_step expects v of shape [{x.shape[0]}, {p.hidden}], "
                         f"got {list(v.shape) if isinstance(v, Tensor) else type(v).__name__}")
    if not x.is_floating_point() or not v.is_floating_point():
        raise ShapeError(f"ltc_step expects floating x and v, got {x.dtype} and {v.dtype}")
    if isinstance(unfolds, bool) or not isinstance(unfolds, int) or unfolds < 1:
        raise ConfigError(f"unfolds must be a positive int, got {unfolds!r}")
    elapsed = _elapsed_column(elapsed, x.shape[0], x)
    return ltc_unfold(v, ltc_sensory(x, p), p, elapsed, unfolds, epsilon)


def ltc_output(v: Tensor, p: LTCParams) -> Tensor:
    """Readout of the first ``M`` (motor) neurons: ``v [..., H] -> output_w v[..., :M] + output_b [..., M]``."""
    return v[..., : p.out_features] * p.output_w + p.output_b


__all__ = ["LTCParams", "LTC_INIT_RANGES", "LTC_POSITIVE", "LTC_CONSTRAINTS", "check_ltc_params",
           "constrain_ltc_params", "clip_ltc_params_", "init_ltc_params", "synapse_sums",
           "ltc_map_inputs", "ltc_sensory", "ltc_rhs", "ltc_unfold", "ltc_step", "ltc_output"]
