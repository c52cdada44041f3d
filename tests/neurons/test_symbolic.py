"""The derived VJP of every neuron equals torch autograd through its step."""
import pytest
import torch

from neurodyn.errors import ConfigError
from neurodyn.neurons import NEURONS
from neurodyn.neurons.primitives import render, torch_namespace
from neurodyn.neurons.symbolic import derive


@pytest.mark.parametrize("name", sorted(NEURONS))
@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid", "sigmoid", "triangle"])
def test_vjp_matches_autograd(name, surrogate):
    m = NEURONS[name]
    d = m.derived
    ns = torch_namespace(surrogate, None)
    step = render(d.step_src, d.step_name, ns)
    vjp = render(d.vjp_src, d.step_name + "_vjp", ns)
    n = 64
    args = [torch.randn(n, dtype=torch.float64, requires_grad=True) for _ in d.args]
    outs = step(*args)
    gs = [torch.randn(n, dtype=torch.float64) for _ in outs]
    auto = torch.autograd.grad(outs, args, gs, allow_unused=True)
    mine = vjp(*[a.detach() for a in args], *gs)
    for a_name, ga, gm in zip(d.args, auto, mine):
        ga = torch.zeros(n, dtype=torch.float64) if ga is None else ga
        torch.testing.assert_close(torch.as_tensor(gm, dtype=torch.float64).expand(n), ga, rtol=1e-10, atol=1e-10,
                                   msg=f"{name}: d/d{a_name}")


def test_non_straight_line_step_rejected():
    def bad(x, v, decay):
        if v > 0:
            v = v * decay
        return v, v

    with pytest.raises(ConfigError, match="only single-name assignments"):
        derive(bad)

    def bad2(x, v, decay):
        v2 = decay * v + x
        v2 = v2 + 1
        return v2, v2

    with pytest.raises(ConfigError, match="assigned twice"):
        derive(bad2)

    def bad3(x, v, decay):
        y = numpy_exp(v)  # noqa: F821
        return y, y

    with pytest.raises(ConfigError, match="unknown name 'numpy_exp'"):
        derive(bad3)
