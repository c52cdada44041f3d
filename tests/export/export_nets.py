"""Small networks shared by the export tests."""
import torch

import neurodyn.nn as ndn


def make_net(kind: str = "mixed", scale: float = 6.0) -> torch.nn.Sequential:
    """float64 nets that spike: 'lif' (LIF + LI readout), 'mixed' (LIF, recurrent CUBA, LI)."""
    if kind == "lif":
        layers = [ndn.Linear(40, 32), ndn.LIF(tau_mem=5.0), ndn.Linear(32, 10), ndn.LI(tau_mem=10.0)]
    else:
        layers = [ndn.Linear(40, 32), ndn.LIF(tau_mem=5.0),
                  ndn.Recurrent(32, 24, ndn.CUBALIF(tau_syn=2.0, tau_mem=5.0, reset="zero")),
                  ndn.Linear(24, 10), ndn.LI(tau_mem=10.0)]
    net = torch.nn.Sequential(*layers).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net


def spikes_input(T: int = 60, B: int = 5, n: int = 40, p: float = 0.1, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return ((torch.rand(T, B, n, generator=g) < p).double() * torch.randint(1, 3, (T, B, n), generator=g).double())


