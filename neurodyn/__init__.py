"""neurodyn: spiking (LIF family), liquid time-constant (LTC, CfC) and ODE networks on one
event-driven simulator core (Numba on CPU, CuPy on GPU), with a PyTorch reference path.

What users import, by subpackage (lowest layer first; see the README's Architecture):

- ``neurodyn.neurons``    each neuron's step, defined once (``NeuronModel``)
- ``neurodyn.solvers``    ``odesolve`` and its regularizable step-size heuristics
- ``neurodyn.core``       ``Network`` (event-driven inference), ``Events``
- ``neurodyn.nn``         torch modules (``Linear``, ``LIF``, ``LTC``, ``Sequential``, ...) and ``to_network``
- ``neurodyn.data``       SHD / N-MNIST readers and loaders
- ``neurodyn.train``      the trainer behind ``neurodyn train``
- ``neurodyn.delays``, ``neurodyn.inference``, ``neurodyn.export``  delays, early exit, fixed-point export

Importing ``neurodyn`` alone loads none of them (no torch import).
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neurodyn")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
