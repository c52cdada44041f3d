"""Spread-delay synapses as one causal 1-D convolution over time: the form for GPUs (cuDNN).

The DCLS synapse of ``nn.delays`` is a kernel [I, K, O] of taps over K = max_delay + 1 steps,
y[t, b, o] = sum_i sum_k kern[i, k, o] x[t - k, b, i].  That is ``conv1d`` of the input laid
out [B, I, T], padded with K - 1 zero steps in front, with the taps reversed in time: one
call whose forward and backward (to the input and to the kernel, hence to the weights and
delays through autograd) run as cuDNN convolutions on a GPU, as the DCLS method itself does,
instead of K matrix products and K slices kept for the backward (``delay_conv_torch``).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def delay_conv1d(x: torch.Tensor, kern: torch.Tensor) -> torch.Tensor:
    """x [T, B, I], kern [I, K, O] -> y [T, B, O] (any device, autograd): the causal
    convolution y[t] = sum_k x[t - k] @ kern[:, k, :]."""
    T, B, I = x.shape
    K = kern.shape[1]
    w = kern.permute(2, 0, 1).flip(2)  # [O, I, K]: conv1d correlates, so the last tap meets x[t]
    xs = F.pad(x.permute(1, 2, 0), (K - 1, 0))  # [B, I, K - 1 + T]
    return F.conv1d(xs, w).permute(2, 0, 1).contiguous()


__all__ = ["delay_conv1d"]
