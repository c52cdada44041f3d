"""Leaky integrate-and-fire neurons: LIF, current-based LIF (CUBA) and leaky integrator (LI).

Discrete-time dynamics per step (dt ms), h the membrane before reset:

    LIF:   h = v_rest + decay (v - v_rest) + gain x
           s = H(h - threshold)
           v' = h - s (reset_sub threshold + (1 - reset_sub)(h - v_reset))
    CUBA:  i' = alpha_syn i + x          (synaptic current first, as on Loihi / snnTorch Synaptic)
           then LIF on input i'
    LI:    v' = v_rest + decay (v - v_rest) + gain x   (non-spiking readout; out = v')

reset_sub = 1 subtracts the threshold (soft reset), 0 sets v to v_reset (hard reset).
"""
from __future__ import annotations

from .base import NeuronModel


def lif(x, v, decay, gain, v_rest, threshold, v_reset, reset_sub):
    h = v_rest + decay * (v - v_rest) + gain * x
    s = spike(h - threshold)  # noqa: F821 - primitive bound per backend
    v_next = h - s * (reset_sub * threshold + (1 - reset_sub) * (h - v_reset))
    return s, v_next


def cuba(x, v, i, alpha_syn, decay, gain, v_rest, threshold, v_reset, reset_sub):
    i_next = alpha_syn * i + x
    h = v_rest + decay * (v - v_rest) + gain * i_next
    s = spike(h - threshold)  # noqa: F821
    v_next = h - s * (reset_sub * threshold + (1 - reset_sub) * (h - v_reset))
    return s, v_next, i_next


def li(x, v, decay, gain, v_rest):
    v_next = v_rest + decay * (v - v_rest) + gain * x
    return v_next, v_next


_SPIKE_COEFS = ("decay", "gain", "v_rest", "threshold", "v_reset", "reset_sub")
LIF = NeuronModel("lif", lif, states=("v",), coefs=_SPIKE_COEFS, spiking=True)
CUBA = NeuronModel("cuba", cuba, states=("v", "i"), coefs=("alpha_syn",) + _SPIKE_COEFS, spiking=True)
LI = NeuronModel("li", li, states=("v",), coefs=("decay", "gain", "v_rest"), spiking=False)
