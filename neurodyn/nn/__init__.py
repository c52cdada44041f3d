"""torch.nn modules over multi-step tensors [T, B, ...]."""
from .linear import Linear, MultiStep
from .neurons import ALIF, CUBALIF, LI, LIF, NEURON_MODULES, SpikingNeuron, make_neuron, reset
from .interop import convert_spikingjelly, from_spikingjelly
from .recurrent import Recurrent
from .ltc import CfC, LTC
from .delays import DelayedLinear
from .sequential import Sequential
from .convert import fold_batchnorm, to_network
from .ode import NeuralODE, ODELTC

__all__ = ["ALIF", "CUBALIF", "CfC", "DelayedLinear", "LTC", "LI", "LIF", "Linear", "MultiStep", "NEURON_MODULES",
           "Recurrent", "Sequential", "SpikingNeuron", "convert_spikingjelly", "fold_batchnorm", "NeuralODE", "ODELTC", "to_network", "from_spikingjelly", "make_neuron", "reset"]
