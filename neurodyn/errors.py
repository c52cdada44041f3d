"""Exceptions raised by neurodyn. Each names the problem in one message."""
from __future__ import annotations


class NeurodynError(Exception):
    """Base class for all neurodyn errors."""


class ConfigError(NeurodynError, ValueError):
    """An unknown name (neuron, backend, surrogate, option) or an invalid value."""


class ShapeError(NeurodynError, ValueError):
    """A tensor has the wrong shape or dtype for the call."""


class BackendUnavailableError(NeurodynError, RuntimeError):
    """A backend was asked for but cannot run here (e.g. cupy without a GPU)."""


class DataFormatError(NeurodynError, ValueError):
    """A data file is missing, truncated, corrupt or not in the expected format.

    The message always names the file and the problem.
    """


__all__ = ["NeurodynError", "ConfigError", "ShapeError", "BackendUnavailableError", "DataFormatError"]
