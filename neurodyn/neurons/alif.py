"""Adaptive LIF (Bellec et al. 2018, LSNN): the threshold rises with each spike and decays back.

    h  = v_rest + decay (v - v_rest) + gain x
    th = threshold + adapt_beta a
    s  = H(h - th)
    v' = h - s (reset_sub th + (1 - reset_sub)(h - v_reset))
    a' = adapt_decay a + (1 - adapt_decay) s
"""
from __future__ import annotations

from .base import NeuronModel


def alif(x, v, a, decay, gain, v_rest, threshold, v_reset, reset_sub, adapt_decay, adapt_beta):
    h = v_rest + decay * (v - v_rest) + gain * x
    th = threshold + adapt_beta * a
    s = spike(h - th)  # noqa: F821 - primitive bound per backend
    v_next = h - s * (reset_sub * th + (1 - reset_sub) * (h - v_reset))
    a_next = adapt_decay * a + (1 - adapt_decay) * s
    return s, v_next, a_next


ALIF = NeuronModel(
    "alif", alif, states=("v", "a"),
    coefs=("decay", "gain", "v_rest", "threshold", "v_reset", "reset_sub", "adapt_decay", "adapt_beta"),
    spiking=True,
)
