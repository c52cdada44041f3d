"""Multi-step spiking neuron modules: input [T, B, ...] -> output [T, B, ...].

Thin torch.nn wrappers: each holds user-facing parameters (time constants in ms,
thresholds), maps them to the step coefficients of its neuron model in torch (so
gradients reach learnable time constants through autograd) and calls the one dispatch
point ``kernels.run_neuron``.  State is reset at every call unless ``stateful=True``
(then ``reset_state()`` / ``neurodyn.nn.reset(net)`` clears it, like SpikingJelly's
``functional.reset_net``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from ..kernels import run_neuron
from ..neurons import ALIF as ALIF_MODEL
from ..neurons import CUBA as CUBA_MODEL
from ..neurons import LI as LI_MODEL
from ..neurons import LIF as LIF_MODEL
from ..neurons.base import NeuronModel, exp_decay, reset_flag
from ..neurons.surrogate import check_surrogate


def _param(value: float | torch.Tensor, size: int | None, learn: bool, name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.get_default_dtype()).clone()
    if size is not None and t.dim() == 0:
        t = t.expand(size).clone()
    if not bool(torch.isfinite(t).all()):
        raise ConfigError(f"parameter '{name}' has NaN or inf values")
    return nn.Parameter(t) if learn else t


class SpikingNeuron(nn.Module):
    """Base of the multi-step neuron modules. Subclasses define ``model`` and ``coefficients()``."""

    model: NeuronModel

    def __init__(self, size: int | None = None, dt: float = 1.0, integration: str = "exact",
                 surrogate: str = "atan", alpha: float | None = None, backend: str = "auto",
                 stateful: bool = False) -> None:
        super().__init__()
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ConfigError(f"dt must be a positive number of ms, got {dt!r}")
        if integration not in ("exact", "euler"):
            raise ConfigError(f"unknown integration '{integration}'; choose 'exact' or 'euler'")
        self.surrogate, self.alpha = check_surrogate(surrogate, alpha)
        self.size, self.dt, self.integration, self.backend = size, float(dt), integration, backend
        self.stateful = stateful
        self.state: tuple[torch.Tensor, ...] | None = None

    def _register(self, name: str, value, learn: bool) -> None:
        p = _param(value, self.size, learn, name)
        if isinstance(p, nn.Parameter):
            self.register_parameter(name, p)
        else:
            self.register_buffer(name, p)

    def coefficients(self) -> tuple[torch.Tensor, ...]:
        """Step coefficients in the order of ``self.model.coefs`` (scalars or [N])."""
        raise NotImplementedError

    def initial_state(self, batch: int, n: int, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.zeros((batch, n), dtype=like.dtype, device=like.device) for _ in self.model.states)

    def reset_state(self) -> None:
        self.state = None

    def run(self, x: torch.Tensor, state0: tuple[torch.Tensor, ...] | None = None,
            lengths: torch.Tensor | None = None,
            rec_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Run over x [T, B, ...]; returns (out [T, B, ...], state trajectories [T, B, ...] each).

        rec_weight [N, N]: recurrent weights (see ``kernels.run_neuron``), used by ``Recurrent``.
        """
        if not isinstance(x, torch.Tensor) or x.dim() < 3:
            raise ShapeError(f"{type(self).__name__} expects a multi-step input [T, B, ...], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        T, B = x.shape[:2]
        feat = x.shape[2:]
        x3 = x.reshape(T, B, -1)
        n = x3.shape[2]
        if self.size is not None and n != self.size:
            raise ShapeError(f"{type(self).__name__}(size={self.size}) got {n} features per sample {tuple(feat)}")
        if state0 is None:
            state0 = self.state if (self.stateful and self.state is not None) else self.initial_state(B, n, x3)
        else:
            state0 = tuple(s.reshape(B, n) for s in state0)
        coefs = tuple(c.to(x3.dtype) for c in self.coefficients())
        out, trajs = run_neuron(self.model, x3, coefs, state0=state0, lengths=lengths,
                                surrogate=self.surrogate, alpha=self.alpha, backend=self.backend,
                                rec_weight=rec_weight)
        if self.stateful:
            self.state = tuple(tr[-1].detach() for tr in trajs)
        return out.reshape(x.shape), tuple(tr.reshape(x.shape) for tr in trajs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.run(x, lengths=lengths)[0]

    def extra_repr(self) -> str:
        return f"size={self.size}, dt={self.dt}, surrogate={self.surrogate}({self.alpha}), backend={self.backend}"


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire neuron, multi-step.

    tau_mem: membrane time constant (ms); threshold, v_rest, v_reset in the units of x;
    reset: 'subtract' (soft) or 'zero' (hard, to v_reset); normalize_input: scale input by
    (1 - decay) as SpikingJelly's ``decay_input=True`` (False: add x unscaled, as snnTorch).
    integration 'euler' with normalize_input reproduces SpikingJelly's LIFNode exactly.
    """

    model = LIF_MODEL

    def __init__(self, tau_mem: float | torch.Tensor = 20.0, threshold: float = 1.0, v_rest: float = 0.0,
                 v_reset: float = 0.0, reset: str = "subtract", normalize_input: bool = True,
                 learn_tau: bool = False, learn_threshold: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.reset_sub = reset_flag(reset)
        self.reset_mode, self.normalize_input = reset, normalize_input
        tau = torch.as_tensor(tau_mem, dtype=torch.get_default_dtype())
        if not bool(torch.isfinite(tau).all()) or bool((tau <= 0).any()):
            raise ConfigError(f"tau_mem must be positive and finite (ms), got {tau_mem!r}")
        self._register("tau_mem", tau, learn_tau)
        self._register("threshold", threshold, learn_threshold)
        self._register("v_rest", v_rest, False)
        self._register("v_reset", v_reset, False)

    def _decay_gain(self, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        decay = exp_decay(tau, self.dt, self.integration)
        gain = 1.0 - decay if self.normalize_input else torch.ones_like(decay)
        return decay, gain

    def coefficients(self) -> tuple[torch.Tensor, ...]:
        decay, gain = self._decay_gain(self.tau_mem)
        return (decay, gain, self.v_rest, self.threshold, self.v_reset,
                torch.tensor(self.reset_sub))

    def initial_state(self, batch, n, like):
        return (torch.broadcast_to(self.v_rest.to(like), (batch, n)).contiguous(),)


class CUBALIF(LIF):
    """Current-based LIF: a synaptic current with time constant tau_syn (ms) feeds the membrane.

    i' = alpha_syn i + x, alpha_syn = exp(-dt/tau_syn); then LIF driven by i'.
    """

    model = CUBA_MODEL

    def __init__(self, tau_syn: float | torch.Tensor = 5.0, tau_mem: float | torch.Tensor = 20.0,
                 learn_tau: bool = False, **kw) -> None:
        super().__init__(tau_mem=tau_mem, learn_tau=learn_tau, **kw)
        ts = torch.as_tensor(tau_syn, dtype=torch.get_default_dtype())
        if not bool(torch.isfinite(ts).all()) or bool((ts <= 0).any()):
            raise ConfigError(f"tau_syn must be positive and finite (ms), got {tau_syn!r}")
        self._register("tau_syn", ts, learn_tau)

    def coefficients(self):
        return (exp_decay(self.tau_syn, self.dt, self.integration),) + super().coefficients()

    def initial_state(self, batch, n, like):
        return super().initial_state(batch, n, like) + (torch.zeros((batch, n), dtype=like.dtype, device=like.device),)


class ALIF(LIF):
    """Adaptive LIF (LSNN): threshold + adapt_beta * a, a decays with tau_adapt (ms) and jumps on spikes."""

    model = ALIF_MODEL

    def __init__(self, tau_adapt: float | torch.Tensor = 200.0, adapt_beta: float = 1.8,
                 learn_tau: bool = False, **kw) -> None:
        super().__init__(learn_tau=learn_tau, **kw)
        ta = torch.as_tensor(tau_adapt, dtype=torch.get_default_dtype())
        if not bool(torch.isfinite(ta).all()) or bool((ta <= 0).any()):
            raise ConfigError(f"tau_adapt must be positive and finite (ms), got {tau_adapt!r}")
        self._register("tau_adapt", ta, learn_tau)
        self._register("adapt_beta", adapt_beta, False)

    def coefficients(self):
        return super().coefficients() + (exp_decay(self.tau_adapt, self.dt, "exact"), self.adapt_beta)

    def initial_state(self, batch, n, like):
        return super().initial_state(batch, n, like) + (torch.zeros((batch, n), dtype=like.dtype, device=like.device),)


class LI(SpikingNeuron):
    """Leaky integrator (non-spiking readout): output is the membrane trace [T, B, N]."""

    model = LI_MODEL

    def __init__(self, tau_mem: float | torch.Tensor = 20.0, v_rest: float = 0.0, normalize_input: bool = True,
                 learn_tau: bool = False, **kw) -> None:
        super().__init__(**kw)
        tau = torch.as_tensor(tau_mem, dtype=torch.get_default_dtype())
        if not bool(torch.isfinite(tau).all()) or bool((tau <= 0).any()):
            raise ConfigError(f"tau_mem must be positive and finite (ms), got {tau_mem!r}")
        self.normalize_input = normalize_input
        self._register("tau_mem", tau, learn_tau)
        self._register("v_rest", v_rest, False)

    def coefficients(self):
        decay = exp_decay(self.tau_mem, self.dt, self.integration)
        gain = 1.0 - decay if self.normalize_input else torch.ones_like(decay)
        return decay, gain, self.v_rest


NEURON_MODULES: dict[str, type[SpikingNeuron]] = {"lif": LIF, "cuba": CUBALIF, "alif": ALIF, "li": LI}


def make_neuron(name: str, **kw) -> SpikingNeuron:
    """Build a neuron module by name ('lif', 'cuba', 'alif', 'li')."""
    if name not in NEURON_MODULES:
        raise ConfigError(f"unknown neuron '{name}'; choose one of {sorted(NEURON_MODULES)}")
    return NEURON_MODULES[name](**kw)


def reset(net: nn.Module) -> None:
    """Clear the carried state of every stateful neuron in ``net``."""
    for m in net.modules():
        if isinstance(m, SpikingNeuron):
            m.reset_state()
