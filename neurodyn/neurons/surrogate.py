"""Surrogate derivatives of the spike function H(u), u = v - threshold.

Each surrogate is one straight-line expression in the primitive language of
``symbolic.py`` (plus ``abs_`` and ``relu``), rendered for torch and Numba from the same
source.  ``alpha`` sets the width: larger alpha, sharper surrogate.  Conventions follow
the peers so that their gradients can be matched:

- ``fast_sigmoid`` (SuperSpike / snnTorch ``fast_sigmoid(slope=alpha)``): 1 / (alpha |u| + 1)^2
- ``atan`` (SpikingJelly ``ATan(alpha)``, snnTorch ``atan(alpha)``): alpha/2 / (1 + (pi/2 alpha u)^2)
- ``sigmoid`` (SpikingJelly ``Sigmoid(alpha)``): alpha sig(alpha u) (1 - sig(alpha u))
- ``triangle`` (unit area): alpha * relu(1 - alpha |u|)
"""
from __future__ import annotations

import math

from ..errors import ConfigError


def fast_sigmoid(u, alpha):
    return 1.0 / ((alpha * abs_(u) + 1.0) * (alpha * abs_(u) + 1.0))  # noqa: F821 - primitive


def atan(u, alpha):
    return 0.5 * alpha / (1.0 + (0.5 * PI * alpha * u) * (0.5 * PI * alpha * u))  # noqa: F821


def sigmoid(u, alpha):
    return alpha * sigmoid_(alpha * u) * (1.0 - sigmoid_(alpha * u))  # noqa: F821


def triangle(u, alpha):
    return alpha * relu(1.0 - alpha * abs_(u))  # noqa: F821


SURROGATES = {f.__name__: f for f in (fast_sigmoid, atan, sigmoid, triangle)}
DEFAULT_ALPHA = {"fast_sigmoid": 25.0, "atan": 2.0, "sigmoid": 4.0, "triangle": 1.0}


def check_surrogate(name: str, alpha: float | None) -> tuple[str, float]:
    """Validate a surrogate name and width; returns (name, alpha) with the default filled in."""
    if name not in SURROGATES:
        raise ConfigError(f"unknown surrogate '{name}'; choose one of {sorted(SURROGATES)}")
    a = DEFAULT_ALPHA[name] if alpha is None else float(alpha)
    if not math.isfinite(a) or a <= 0:
        raise ConfigError(f"surrogate width alpha must be a positive finite number, got {alpha!r}")
    return name, a
