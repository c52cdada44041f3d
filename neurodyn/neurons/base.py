"""What a neuron model is: one step function plus the names of its state and coefficients.

A model's ``step(x, *state, *coefs) -> (out, *new_state)`` is the single definition of
its math.  ``x`` is the synaptic input of one step, state and coefficients are per
neuron.  Coefficients are what the step needs (decays, gains, thresholds); they are
computed from the user-facing parameters (time constants in ms, dt in ms) by the
model's ``coefficients`` function in torch, so gradients reach the parameters by
autograd whatever backend runs the step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import ConfigError
from .symbolic import Derived, derive


@dataclass(frozen=True)
class NeuronModel:
    """A neuron model: its step (the math), state names and coefficient names."""

    name: str
    step: Callable
    states: tuple[str, ...]
    coefs: tuple[str, ...]
    spiking: bool

    def __post_init__(self) -> None:
        d = self.derived
        expect = ("x",) + self.states + self.coefs
        if d.args != expect:
            raise ConfigError(f"neuron '{self.name}': step arguments {d.args} != (x, *states, *coefs) {expect}")
        if d.n_outputs != 1 + len(self.states):
            raise ConfigError(f"neuron '{self.name}': step must return (out, *new_states)")

    @property
    def derived(self) -> Derived:
        return derive(self.step)


def exp_decay(tau: torch.Tensor, dt: float, integration: str) -> torch.Tensor:
    """Per-step decay factor of a leaky variable with time constant ``tau`` (ms), step ``dt`` (ms).

    ``exact``: exp(-dt/tau), the exact solution for piecewise-constant input;
    ``euler``: 1 - dt/tau, the forward-Euler step used by SpikingJelly.
    """
    if integration == "exact":
        return torch.exp(-dt / tau)
    if integration == "euler":
        return 1.0 - dt / tau
    raise ConfigError(f"unknown integration '{integration}'; choose 'exact' or 'euler'")


RESET_MODES = {"subtract": 1.0, "zero": 0.0}


def reset_flag(reset: str) -> float:
    """1.0 for reset-by-subtraction, 0.0 for reset-to-v_reset (written as arithmetic in the step)."""
    if reset not in RESET_MODES:
        raise ConfigError(f"unknown reset mode '{reset}'; choose one of {sorted(RESET_MODES)}")
    return RESET_MODES[reset]
