"""The fused training kernels of a Linear -> neuron stack (nn.fused_stack, core.train_engine) give
the outputs and gradients of the same modules run one by one on the torch reference path."""
import numba
import pytest
import torch
from torch import nn

import neurodyn.nn as ndn
from neurodyn.nn.convert import to_network
from neurodyn.core import Network
from neurodyn.nn.fused_stack import dropout_mask, stack_layers
from neurodyn.errors import ConfigError, ShapeError


def _stack(kind: str, dtype, learn: bool) -> list[nn.Module]:
    torch.manual_seed(1)
    if kind == "lif_alif_li":
        mods = [ndn.Linear(50, 40), ndn.LIF(tau_mem=6.0, reset="zero", learn_tau=learn),
                ndn.Linear(40, 30), ndn.ALIF(tau_mem=8.0, tau_adapt=30.0, learn_tau=learn, surrogate="fast_sigmoid"),
                ndn.Linear(30, 7), ndn.LI(tau_mem=10.0, learn_tau=learn)]
    elif kind == "cuba_lif":  # spiking readout, per-layer surrogates and widths
        mods = [ndn.Linear(50, 36), ndn.CUBALIF(tau_syn=3.0, tau_mem=6.0, learn_tau=learn, surrogate="triangle",
                                                 alpha=0.5),
                ndn.Linear(36, 9), ndn.LIF(tau_mem=5.0, normalize_input=False, learn_tau=learn, surrogate="sigmoid")]
    else:  # one layer, bias-free Linear
        mods = [nn.Linear(50, 12, bias=False), ndn.LIF(tau_mem=4.0, reset="subtract", learn_tau=learn)]
    for m in mods:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 1.2)
    return [m.to(dtype) for m in mods]


def _input(T: int, B: int, dtype) -> torch.Tensor:
    # sparse, with values other than 1 (and a -0.0, which is no event)
    x = (torch.rand(T, B, 50) < 0.06).to(dtype) * torch.randint(1, 4, (T, B, 50)).to(dtype)
    x[0, 0, 0] = -0.0
    return x


def _reference(mods: list[nn.Module]) -> list[nn.Module]:
    """The same modules (shared parameters) with every neuron on the torch reference backend."""
    for m in mods:
        if isinstance(m, ndn.SpikingNeuron):
            m.backend = "torch"
    return mods


def _run(model: nn.Module, x: torch.Tensor, lengths, g: torch.Tensor | None = None):
    y = model(x, lengths=lengths)
    g = torch.randn_like(y) if g is None else g
    (y * g).sum().backward()
    return y.detach(), g, {n: p.grad.clone() for n, p in model.named_parameters()}


# (each case compiles its own kernels: the cases cover the neurons, dtypes and gradient variants
# between them rather than all their products)
@pytest.mark.parametrize("kind, dtype, learn", [("lif_alif_li", torch.float64, True),
                                                ("lif_alif_li", torch.float32, False),
                                                ("cuba_lif", torch.float32, True),
                                                ("single", torch.float64, False)])
def test_fused_stack_equals_modules(kind, dtype, learn):
    mods = _stack(kind, dtype, learn)
    fused = ndn.Sequential(*mods, fused=True)
    x = _input(60, 5, dtype)
    lengths = torch.tensor([60, 25, 0, 59, 60])
    assert fused.fused_reason(x) is None
    y_f, g, grads_f = _run(fused, x, lengths)
    fused.zero_grad()
    plain = ndn.Sequential(*_reference(mods), fused=False)
    y_p, _, grads_p = _run(plain, x, lengths, g)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(y_f, y_p, **tol)
    assert torch.all(y_f[25:, 1] == 0) and torch.all(y_f[:, 2] == 0)
    assert set(grads_f) == set(grads_p)
    for name in grads_p:
        torch.testing.assert_close(grads_f[name], grads_p[name], **tol, msg=name)
    # the test must exercise the event paths: hidden layers spike, every weight gets a gradient
    with torch.no_grad():
        h = x
        for m in mods[:-2]:
            h = m(h)
            if isinstance(m, ndn.SpikingNeuron):
                assert h.sum() > 0, f"{type(m).__name__} should spike"
    for name, gr in grads_p.items():
        if name.endswith("weight"):
            assert gr.abs().sum() > 0, name


def test_fused_gradients_do_not_depend_on_threads():
    mods = _stack("lif_alif_li", torch.float64, True)
    model = ndn.Sequential(*mods, fused=True)
    x = _input(40, 7, torch.float64)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        y1, g, g1 = _run(model, x, None)
        model.zero_grad()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        y2, _, g2 = _run(model, x, None, g)
    finally:
        numba.set_num_threads(before)
    assert torch.equal(y1, y2)
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], rtol=1e-12, atol=1e-14)


def test_fused_training_step_learns():
    # the architecture of a case above, so its compiled kernels are reused
    model = ndn.Sequential(*_stack("lif_alif_li", torch.float32, False))
    torch.manual_seed(3)
    x = _input(30, 24, torch.float32)
    y = torch.randint(0, 7, (24,))
    assert model.fused_reason(x) is None
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x).mean(0), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_fallback_reasons_and_forced_fused():
    x = _input(20, 3, torch.float32)
    rec = ndn.Sequential(ndn.Recurrent(50, 10, ndn.LIF()), ndn.Linear(10, 4), ndn.LI())
    assert "Recurrent" in rec.fused_reason(x)
    with pytest.raises(ConfigError, match="cannot run fused"):
        ndn.Sequential(*rec, fused=True)(x)
    only_rec = ndn.Sequential(ndn.Recurrent(50, 10, ndn.LIF(tau_mem=4.0)))
    with torch.no_grad():  # the module-by-module path passes lengths to Recurrent layers too
        only_rec[0].ff.weight.mul_(10.0)
        full = only_rec(x)
        out = only_rec(x, lengths=torch.tensor([20, 5, 0]))
    assert full[5:, 1].sum() > 0 and full[:, 2].sum() > 0
    assert torch.all(out[5:, 1] == 0) and torch.all(out[:, 2] == 0) and torch.equal(out[:5, 1], full[:5, 1])
    stack = ndn.Sequential(ndn.Linear(50, 10), ndn.LIF(), ndn.Linear(10, 4), ndn.LI())
    assert "too dense" in stack.fused_reason(torch.rand(20, 3, 50))
    g = torch.Generator().manual_seed(7)
    assert stack.fused_reason((torch.rand(20, 3, 50, generator=g) < 0.15).float()) is None  # under max_density 0.2
    assert ndn.Sequential(*stack, max_density=1.0).fused_reason(torch.rand(20, 3, 50)) is None
    with pytest.raises(ConfigError, match="max_density"):
        ndn.Sequential(*stack, max_density=1.5)
    assert "gradient" in stack.fused_reason(x.clone().requires_grad_())
    assert "not [T, B" in stack.fused_reason(x[..., :20])
    with_li_hidden = ndn.Sequential(ndn.Linear(50, 10), ndn.LI(), ndn.Linear(10, 4), ndn.LI())
    assert "does not spike" in with_li_hidden.fused_reason(x)
    drop_in = ndn.Sequential(nn.Dropout(0.3), ndn.Linear(50, 10), ndn.LIF(), ndn.Linear(10, 4), ndn.LI())
    assert "Dropout" in drop_in.fused_reason(x)
    assert drop_in.eval().fused_reason(x) is None
    drop_out = ndn.Sequential(ndn.Linear(50, 10), ndn.LIF(), ndn.Linear(10, 4), ndn.LI(), nn.Dropout(0.3))
    assert "Dropout after the last" in drop_out.fused_reason(x)
    drop = ndn.Sequential(ndn.Linear(50, 10), ndn.LIF(), nn.Dropout(0.3), ndn.Linear(10, 4), ndn.LI())
    assert drop.fused_reason(x) is None
    assert [lay.dropout for lay in stack_layers(list(drop), training=True)] == [0.3, 0.0]
    assert [lay.dropout for lay in stack_layers(list(drop), training=False)] == [0.0, 0.0]
    with pytest.raises(ConfigError, match="fused must be"):
        ndn.Sequential(ndn.Linear(2, 2), ndn.LIF(), fused="yes")


def test_fused_sequential_is_an_nn_sequential():
    mods = _stack("lif_alif_li", torch.float64, False)
    fused = ndn.Sequential(*mods)
    plain = nn.Sequential(*_reference(_stack("lif_alif_li", torch.float64, False)))
    with torch.no_grad():
        for p in plain.parameters():
            p.zero_()
    plain.load_state_dict(fused.state_dict())
    x = _input(30, 4, torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-12, atol=1e-12)
    # the event core lifts it like any nn.Sequential (its run is tested in test_event_vs_dense)
    net = to_network(fused)
    assert [layer.size for layer in net.layers] == [40, 30, 7]


class _Mask(nn.Module):
    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.mask = mask

    def forward(self, x):
        return x * self.mask


def test_fused_dropout_equals_modules_with_the_same_mask():
    torch.manual_seed(2)
    mods = [ndn.Linear(50, 40), ndn.LIF(tau_mem=6.0), nn.Dropout(0.4),
            ndn.Linear(40, 30), ndn.ALIF(tau_mem=8.0, tau_adapt=30.0), nn.Dropout(0.25),
            ndn.Linear(30, 7), ndn.LI(tau_mem=10.0)]
    for m in mods:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 1.2)
    mods = [m.double() for m in mods]
    fused = ndn.Sequential(*mods, fused=True).train()
    x = _input(40, 6, torch.float64)
    lengths = torch.tensor([40, 12, 40, 3, 39, 40])
    torch.manual_seed(7)
    y_f, g, grads_f = _run(fused, x, lengths)
    fused.zero_grad()
    torch.manual_seed(7)  # the fused stack draws one mask per Dropout, in layer order
    masks = [dropout_mask((40, 6, 40), 0.4, x), dropout_mask((40, 6, 30), 0.25, x)]
    assert 0 < float((masks[0] == 0).double().mean()) < 1
    plain = ndn.Sequential(*_reference(mods[:2] + [_Mask(masks[0])] + mods[3:5] + [_Mask(masks[1])] + mods[6:]),
                           fused=False)
    y_p, _, grads_p = _run(plain, x, lengths, g)
    torch.testing.assert_close(y_f, y_p, rtol=1e-10, atol=1e-12)
    for name in grads_p:
        torch.testing.assert_close(grads_f[name], grads_p[name], rtol=1e-10, atol=1e-12, msg=name)


def test_weight_changed_in_place_before_backward_is_an_error():
    model = ndn.Sequential(*_stack("lif_alif_li", torch.float32, False), fused=True)
    y = model(_input(10, 2, torch.float32))
    with torch.no_grad():
        model[0].weight.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.parametrize("block", [1, 3])
def test_weight_gradients_do_not_depend_on_the_sample_block(monkeypatch, block):
    """Weight gradients that fit in cache are summed step by step (row_adds.scatter_row); larger
    ones over blocks of samples, each block's events grouped by input (row_adds.scatter_grouped):
    blocks of 1 and 3 samples (a partial last block) give the step-by-step gradients."""
    import neurodyn.nn.fused_stack as st
    mods = _stack("lif_alif_li", torch.float64, True)
    fused = ndn.Sequential(*mods, fused=True)
    x = _input(40, 7, torch.float64)
    lengths = torch.tensor([40, 13, 0, 39, 40, 1, 22])
    assert st._sample_block(40, 50, 8) == 8
    assert st._direct_scatter(50, 40, 8) and not st._direct_scatter(700, 256, 4)
    y0, g, grads0 = _run(fused, x, lengths)
    fused.zero_grad()
    monkeypatch.setattr(st, "_sample_block", lambda T, widest, size: block)
    monkeypatch.setattr(st, "_direct_scatter", lambda K, N, size: False)
    y1, _, grads1 = _run(fused, x, lengths, g)
    assert torch.equal(y0, y1)
    for name in grads0:
        torch.testing.assert_close(grads1[name], grads0[name], rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("kind, dtype", [("lif_alif_li", torch.float64), ("lif_alif_li", torch.float32),
                                         ("cuba_lif", torch.float32)])
def test_inference_without_gradients_runs_the_event_core_with_identical_outputs(kind, dtype, monkeypatch):
    """Under no_grad (or with frozen parameters) the stack runs the event core's inference
    kernel, which adds the same rows in the same groups and steps the same neurons: the
    outputs equal the training forward's exactly."""
    import neurodyn.nn.fused_stack as st
    mods = _stack(kind, dtype, learn=True)
    fused = ndn.Sequential(*mods, fused=True).eval()
    x = _input(50, 6, dtype)
    lengths = torch.tensor([50, 17, 0, 49, 50, 3])
    y_train = fused(x, lengths=lengths)
    assert y_train.requires_grad  # the training forward (FusedStackFn)
    calls, infer = [], st._infer
    monkeypatch.setattr(st, "_infer", lambda *a: calls.append(1) or infer(*a))
    with torch.no_grad():
        y_infer = fused(x, lengths=lengths)
    for p in fused.parameters():
        p.requires_grad_(False)
    y_frozen = fused(x, lengths=lengths)
    assert len(calls) == 2
    assert torch.equal(y_infer, y_train.detach()) and torch.equal(y_frozen, y_train.detach())
    assert y_train.abs().sum() > 0


@pytest.mark.parametrize("kind, dtype", [("lif_alif_li", torch.float64), ("cuba_lif", torch.float32)])
def test_event_list_input_trains_exactly_like_frames(kind, dtype):
    """``core.Events`` in (no frames read): the forward adds the same rows in the same order, so
    outputs, gradients and the no-gradient inference path equal the frames' exactly."""
    from neurodyn.core import Events
    x = _input(30, 5, dtype)
    lengths = torch.tensor([30, 11, 0, 29, 30])
    frames = ndn.Sequential(*_stack(kind, dtype, True), fused=True)
    events = ndn.Sequential(*_stack(kind, dtype, True), fused=True)
    ev = Events.from_dense(x)
    y0, g, grads0 = _run(frames, x, lengths)
    y1, _, grads1 = _run(events, ev, lengths, g)
    assert torch.equal(y0, y1)
    for name in grads0:
        assert torch.equal(grads0[name], grads1[name]), name
    with torch.no_grad():
        assert torch.equal(events(ev, lengths=lengths), y0)


def test_event_list_input_runs_module_by_module_when_it_cannot_fuse():
    from neurodyn.core import Events
    x = _input(20, 4, torch.float64)
    mods = _stack("lif_alif_li", torch.float64, False)
    y = ndn.Sequential(*mods, fused=False)(Events.from_dense(x))
    assert torch.equal(y, ndn.Sequential(*mods, fused=False)(x))
    with pytest.raises(ShapeError, match="9 channels"):
        ndn.Sequential(*mods, fused=False)(Events.from_dense(torch.zeros(3, 2, 9, dtype=torch.float64)))
    assert "channels" in ndn.Sequential(*mods).fused_reason(Events.from_dense(torch.zeros(3, 2, 9, dtype=torch.float64)))
    # event lists denser than max_density take the modules too, with the same numbers
    dense = (torch.rand(20, 4, x.shape[2], generator=torch.Generator().manual_seed(3)) < 0.5).to(torch.float64)
    auto = ndn.Sequential(*mods)
    assert "too dense" in auto.fused_reason(Events.from_dense(dense))
    assert auto.fused_reason(Events.from_dense(x)) is None
    assert torch.equal(auto(Events.from_dense(dense)), ndn.Sequential(*mods, fused=False)(dense))
