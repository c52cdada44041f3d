"""torch.nn modules over multi-step tensors [T, B, ...]."""
from .linear import Linear, MultiStep
from .conv import AvgPool2d, Conv2d, Flatten, SumPool2d
from .neurons import ALIF, CUBALIF, LI, LIF, NEURON_MODULES, SpikingNeuron, make_neuron, reset
from .interop import convert_spikingjelly, from_spikingjelly
from .recurrent import Recurrent
from .ltc import CfC, LTC
from .delays import DelayedLinear
from .sequential import Sequential
from .convert import fold_batchnorm, to_network
from .ode import NeuralODE, ODELTC

__all__ = ["ALIF", "AvgPool2d", "CUBALIF", "CfC", "Conv2d", "DelayedLinear", "Flatten", "LTC", "LI", "LIF", "Linear", "MultiStep", "NEURON_MODULES",
           "Recurrent", "Sequential", "SpikingNeuron", "SumPool2d", "convert_spikingjelly", "fold_batchnorm", "NeuralODE", "ODELTC", "to_network", "from_spikingjelly", "make_neuron", "reset"]
