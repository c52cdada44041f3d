"""Bad input gives one clear error each."""
import math

import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.nn.convert import to_network
from neurodyn.errors import BackendUnavailableError, ConfigError, ShapeError
from neurodyn.kernels import cupy_status, run_neuron
from neurodyn.neurons import LIF, get_neuron


def test_unknown_neuron():
    with pytest.raises(ConfigError, match="unknown neuron 'lfi'"):
        get_neuron("lfi")
    with pytest.raises(ConfigError, match="unknown neuron"):
        ndn.make_neuron("izhikevich")


def test_unknown_backend_and_surrogate_and_reset():
    with pytest.raises(ConfigError, match="unknown backend 'cuda'"):
        run_neuron(LIF, torch.zeros(2, 2, 2), [0.9, 0.1, 0, 1, 0, 1], backend="cuda")
    with pytest.raises(ConfigError, match="unknown surrogate 'relu'"):
        ndn.LIF(surrogate="relu")
    with pytest.raises(ConfigError, match="unknown reset mode 'hard'"):
        ndn.LIF(reset="hard")
    with pytest.raises(ConfigError, match="alpha must be a positive"):
        ndn.LIF(alpha=-1.0)


def test_wrong_shapes_and_dtypes():
    lif = ndn.LIF()
    with pytest.raises(ShapeError, match=r"\[T, B, \.\.\.\]"):
        lif(torch.zeros(5, 3))
    with pytest.raises(ShapeError, match="float32 or float64"):
        run_neuron(LIF, torch.zeros(2, 2, 2, dtype=torch.int64), [0.9, 0.1, 0, 1, 0, 1])
    with pytest.raises(ShapeError, match=r"must be a scalar or \[4\]"):
        run_neuron(LIF, torch.zeros(2, 2, 4), [torch.ones(3), 0.1, 0, 1, 0, 1])
    with pytest.raises(ShapeError, match=r"initial state 'v' must be \[2, 4\]"):
        run_neuron(LIF, torch.zeros(2, 2, 4), [0.9, 0.1, 0, 1, 0, 1], state0=[torch.zeros(3, 4)])
    with pytest.raises(ShapeError, match="size=8"):
        ndn.LIF(size=8)(torch.zeros(3, 2, 7))
    with pytest.raises(ShapeError, match="lengths must be"):
        ndn.LIF()(torch.zeros(3, 2, 7), lengths=torch.tensor([1, 2, 3]))


def test_nan_parameters():
    with pytest.raises(ConfigError, match="tau_mem must be positive and finite"):
        ndn.LIF(tau_mem=math.nan)
    with pytest.raises(ConfigError, match="tau_syn must be positive"):
        ndn.CUBALIF(tau_syn=-1.0)
    lif = ndn.LIF(learn_threshold=True)
    with torch.no_grad():
        lif.threshold.fill_(math.nan)
    with pytest.raises(ConfigError, match="coefficient 'threshold' of neuron 'lif' has NaN"):
        lif(torch.zeros(3, 2, 4))
    with pytest.raises(ConfigError, match="dt must be a positive"):
        ndn.LIF(dt=0)


@pytest.mark.skipif(cupy_status() is None, reason="a usable cupy+GPU is present; nothing to refuse")
def test_cupy_without_gpu_is_a_clear_error():
    with pytest.raises(BackendUnavailableError, match="backend 'cupy' asked for but cupy"):
        ndn.LIF(backend="cupy")(torch.zeros(3, 2, 4))


def test_event_core_rejects_unsupported_modules():
    from neurodyn.core import Network
    with pytest.raises(ConfigError, match="Conv2d is not supported"):
        to_network(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3)))
    with pytest.raises(ConfigError, match="ends in a Linear"):
        to_network(torch.nn.Sequential(ndn.Linear(3, 4)))
    net = to_network(torch.nn.Sequential(ndn.Linear(3, 4), ndn.LIF()))
    with pytest.raises(ShapeError, match=r"network input must be \[T, B, 3\]"):
        net.run(torch.zeros(5, 2, 4))
