"""Learnable synaptic delays (DCLS-style) and their integer-delay inference form.

The layer is ``neurodyn.nn.DelayedLinear`` (spread Gaussian kernels, learnable delays);
``kernels.delay_conv`` runs it event-driven, ``kernels.delay_buffer`` runs rounded delays
through per-synapse ring buffers.  Importing this package registers the trainer model kind
``delays`` (the paper's SHD network, ``configs/shd_delays.toml``).
"""
from ..nn.convert import fold_batchnorm
from ..nn.delays import (DelayedLinear, SigmaSchedule, delayed_layers, gaussian_taps, round_delays, set_sigma,
                         shift_add, sigma_at)
from ..train.models import register_model
from .model import DELAY_DEFAULTS, DelaySNN, TimeSharedDropout, build_delay_model, delay_snn
from .plots import plot_delay_histograms

register_model("delays", build_delay_model, DELAY_DEFAULTS)

__all__ = ["DELAY_DEFAULTS", "DelaySNN", "DelayedLinear", "SigmaSchedule", "TimeSharedDropout", "build_delay_model",
           "delay_snn", "delayed_layers", "fold_batchnorm", "gaussian_taps", "plot_delay_histograms", "round_delays", "set_sigma",
           "shift_add", "sigma_at"]
