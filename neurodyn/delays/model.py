"""The DCLS-delays network (Hammouamri et al. 2023) as a trainer model kind ``delays``.

Per hidden layer: DelayedLinear -> BatchNorm -> LIF -> dropout (mask shared over time);
readout: DelayedLinear -> leaky integrator.  The defaults are the paper's SHD recipe
(``configs/shd_delays.toml``): 2 x 256 LIF with tau 10.05 ms (SpikingJelly's Euler step,
no input scaling, hard reset), ATan surrogate (alpha 5), delays up to 250 ms, kernel width
from max_delay / 2 down to 0.23 steps over the first quarter of the 150 epochs, dropout 0.4,
batch norm, no bias, delays learning 100x faster than weights.  ``delays = false`` builds
the same network with plain Linear layers (the baseline).

The kernel width follows the epochs (see ``DelaySNN``); ``on_train_end()`` (or
``nn.delays.round_delays``) rounds the delays to integer steps when training is over.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .. import nn as ndn
from ..errors import ConfigError
from ..nn.delays import DelayedLinear, delayed_layers, round_delays, set_sigma, sigma_at


class TimeSharedDropout(nn.Dropout):
    """Dropout on [T, B, N] with one mask per sample and neuron for all steps (SpikingJelly's
    multi-step ``layer.Dropout``): a dropped neuron is silent for the whole sample."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x[:1]).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * keep


class DelaySNN(nn.Sequential):
    """nn.Sequential of delayed spiking layers that carries its kernel-width schedule.

    sigma_init / sigma_final in steps, exponential decay over ``sigma_decay_epochs`` epochs
    (``nn.delays.sigma_at``).  The epoch count comes from the hook ``on_epoch_end(epoch)``
    when the training loop calls it.  A loop that does not is followed on its own: a training
    batch that comes after an evaluation (an eval-mode forward) starts a new epoch, which is
    what a loop that evaluates after every epoch does.  The count and the last mode travel
    in ``state_dict`` so a resumed run continues the schedule.
    """

    def __init__(self, layers: list[nn.Module], sigma_init: float, sigma_final: float,
                 sigma_decay_epochs: int) -> None:
        super().__init__(*layers)
        sigma_at(0, sigma_init, sigma_final, sigma_decay_epochs)  # validates
        self.sigma_init, self.sigma_final = float(sigma_init), float(sigma_final)
        self.sigma_decay_epochs = int(sigma_decay_epochs)
        self.epochs_done = 0
        self._hooked = False          # on_epoch_end was called: no automatic epoch counting
        self._trained = False         # a training batch has run
        self._evaluated = False       # an evaluation ran since the last training batch
        self._use_epoch_sigma()

    def _use_epoch_sigma(self) -> None:
        sigma = sigma_at(self.epochs_done, self.sigma_init, self.sigma_final, self.sigma_decay_epochs)
        for m in delayed_layers(self):
            if not m.rounded:
                m.set_sigma(sigma)

    @property
    def sigma(self) -> float:
        """Kernel width in force (steps)."""
        return sigma_at(self.epochs_done, self.sigma_init, self.sigma_final, self.sigma_decay_epochs)

    def on_epoch_end(self, epoch: int) -> float:
        """Training-loop hook after ``epoch`` (1-based) epochs: set the width for the next one."""
        self._hooked = True
        self.epochs_done = int(epoch)
        self._use_epoch_sigma()
        return self.sigma

    def on_train_end(self) -> None:
        """Training-loop hook when training is over: round the delays to integer steps."""
        round_delays(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            if not self._hooked and self._trained and self._evaluated:
                self.epochs_done += 1
                self._use_epoch_sigma()
            self._trained, self._evaluated = True, False
        else:
            self._evaluated = True
        return super().forward(x)

    def get_extra_state(self) -> dict:
        return {"epochs_done": self.epochs_done, "hooked": self._hooked, "trained": self._trained,
                "evaluated": self._evaluated}

    def set_extra_state(self, state: dict) -> None:
        self.epochs_done = int(state["epochs_done"])
        self._hooked, self._trained = bool(state["hooked"]), bool(state["trained"])
        self._evaluated = bool(state["evaluated"])


def delay_snn(in_features: int, hidden: list[int], n_classes: int, dt_ms: float = 1.0, delays: bool = True,
              max_delay_ms: float = 250.0, sigma_init: float = 0.0, sigma_final: float = 0.23,
              sigma_decay_epochs: int = 37, delay_lr_scale: float = 100.0, readout_delays: bool = True,
              neuron: str = "lif", tau_mem: float = 10.05, tau_out: float = 10.05, threshold: float = 1.0,
              integration: str = "euler", normalize_input: bool = False, reset: str = "zero",
              surrogate: str = "atan", alpha: float = 5.0, dropout: float = 0.4, batchnorm: bool = True,
              bias: bool = False, backend: str = "auto") -> DelaySNN | nn.Sequential:
    """x [T, B, in_features] -> readout membrane [T, B, n_classes] (see the module docstring).

    Times in ms at step dt_ms; max_delay_ms becomes round(max_delay_ms / dt_ms) steps;
    sigma_init 0 means max_delay / 2 steps.  ``delays=False`` returns a plain nn.Sequential
    with ndn.Linear in place of every DelayedLinear (same neurons, norms and dropout).
    """
    if not hidden or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden):
        raise ConfigError(f"hidden must be a non-empty list of positive integers, got {hidden!r}")
    if neuron not in ("lif", "cuba", "alif"):
        raise ConfigError(f"hidden neuron must be 'lif', 'cuba' or 'alif', got {neuron!r}")
    if not (math.isfinite(max_delay_ms) and max_delay_ms >= 0):
        raise ConfigError(f"max_delay_ms must be >= 0 ms, got {max_delay_ms!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    max_delay = int(round(max_delay_ms / dt_ms))
    sig0 = sigma_init if sigma_init > 0 else max(max_delay / 2.0, sigma_final)

    def connect(n_in: int, n_out: int, delayed: bool) -> nn.Module:
        if delayed:
            lin: nn.Module = DelayedLinear(n_in, n_out, max_delay, sigma_init=sig0, bias=bias,
                                           delay_lr_scale=delay_lr_scale)
        else:
            lin = ndn.Linear(n_in, n_out, bias=bias)
        nn.init.kaiming_uniform_(lin.weight, nonlinearity="relu")  # the paper's init
        return lin

    kw = dict(dt=dt_ms, integration=integration, surrogate=surrogate, alpha=alpha, backend=backend)
    layers: list[nn.Module] = []
    n = in_features
    for h in hidden:
        layers.append(connect(n, h, delays))
        if batchnorm:
            layers.append(ndn.MultiStep(nn.BatchNorm1d(h)))
        layers.append(ndn.make_neuron(neuron, tau_mem=tau_mem, threshold=threshold, reset=reset,
                                      normalize_input=normalize_input, **kw))
        if dropout > 0:
            layers.append(TimeSharedDropout(dropout))
        n = h
    layers.append(connect(n, n_classes, delays and readout_delays))
    layers.append(ndn.LI(tau_mem=tau_out, normalize_input=normalize_input, dt=dt_ms, integration=integration,
                         backend=backend))
    if not delays or not delayed_layers(nn.Sequential(*layers)):
        return nn.Sequential(*layers)
    return DelaySNN(layers, sig0, sigma_final, sigma_decay_epochs)




DELAY_DEFAULTS: dict[str, Any] = {
    "hidden": [256, 256], "delays": True, "max_delay_ms": 250.0, "sigma_init": 0.0, "sigma_final": 0.23,
    "sigma_decay_epochs": 37, "delay_lr_scale": 100.0, "readout_delays": True, "neuron": "lif",
    "tau_mem": 10.05, "tau_out": 10.05, "threshold": 1.0, "integration": "euler", "normalize_input": False,
    "reset": "zero", "surrogate": "atan", "alpha": 5.0, "dropout": 0.4, "batchnorm": True, "bias": False,
}


def build_delay_model(n_in: int, n_classes: int, cfg: dict, dt_ms: float, backend: str) -> nn.Module:
    """Registry builder for ``[model] kind = "delays"``."""
    return delay_snn(n_in, list(cfg["hidden"]), n_classes, dt_ms=dt_ms, backend=backend,
                     **{k: v for k, v in cfg.items() if k != "hidden"})
