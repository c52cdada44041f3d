"""LTC pure functions: against ncps's LTCCell, a closed form, and ODE solutions of ltc_rhs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurodyn.errors import ConfigError, ShapeError
from neurodyn.neurons.ltc import (LTC_INIT_RANGES, LTCParams, check_ltc_params, clip_ltc_params_,
                                  constrain_ltc_params, init_ltc_params, ltc_output, ltc_rhs, ltc_step)

ncps_torch = pytest.importorskip("ncps.torch")
wirings = pytest.importorskip("ncps.wirings")

D = torch.float64


def _params_from_cell(cell) -> LTCParams:
    P = cell._params
    names = {"mask": "sparsity_mask", "sensory_mask": "sensory_sparsity_mask"}
    raw = LTCParams(**{f: P[names.get(f, f)] for f in LTCParams._fields})
    return constrain_ltc_params(raw, "softplus" if cell._implicit_param_constraints else "clip")


def _perturb_mappings(cell):
    with torch.no_grad():
        for k in ("input_w", "input_b", "output_w", "output_b"):
            cell._params[k].add_(0.3 * torch.randn_like(cell._params[k]))


@pytest.mark.parametrize("wiring, implicit", [
    (lambda: wirings.FullyConnected(6), False),
    (lambda: wirings.FullyConnected(6), True),
    (lambda: wirings.AutoNCP(10, 3), False),
])
def test_step_matches_ncps_cell(wiring, implicit):
    cell = ncps_torch.LTCCell(wiring(), in_features=4, implicit_param_constraints=implicit).to(D)
    _perturb_mappings(cell)
    p = _params_from_cell(cell)
    B, H = 5, cell.state_size
    x = torch.randn(B, 4, dtype=D, requires_grad=True)
    v = torch.randn(B, H, dtype=D) * 0.5
    ts = torch.rand(B, 1, dtype=D) + 0.2
    for elapsed in (1.0, ts):
        ref_out, ref_v = cell(x, v, elapsed)
        ours_v = ltc_step(x, v, p, elapsed=elapsed, unfolds=cell._ode_unfolds, epsilon=cell._epsilon)
        assert torch.allclose(ours_v, ref_v, rtol=0, atol=1e-12)
        assert torch.allclose(ltc_output(ours_v, p), ref_out, rtol=0, atol=1e-12)
    # [B] elapsed is accepted too (ncps needs [B, 1])
    assert torch.allclose(ltc_step(x, v, p, elapsed=ts[:, 0]), cell(x, v, ts)[1], atol=1e-12)
    # gradients w.r.t. the input and every parameter
    wts = torch.randn(B, cell.motor_size, dtype=D)
    g_ref = torch.autograd.grad((cell(x, v, ts)[0] * wts).sum(), [x, cell._params["w"], cell._params["cm"]])
    p = _params_from_cell(cell)
    g_ours = torch.autograd.grad((ltc_output(ltc_step(x, v, p, ts), p) * wts).sum(),
                                 [x, cell._params["w"], cell._params["cm"]])
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
        assert a.abs().max() > 0


def test_step_matches_ncps_cell_float32():
    cell = ncps_torch.LTCCell(wirings.AutoNCP(12, 4), in_features=3)
    p = _params_from_cell(cell)
    x, v = torch.randn(8, 3), torch.randn(8, 12) * 0.3
    for _ in range(5):
        _, ref = cell(x, v)
        ours = ltc_step(x, v, p)
        assert torch.allclose(ours, ref, rtol=0, atol=1e-6)
        v = ref


def _small(seed=1, F_in=3, H=5):
    g = torch.Generator().manual_seed(seed)
    p = init_ltc_params(F_in, H, generator=g, dtype=D)
    x = torch.randn(1, F_in, generator=g, dtype=D)
    v0 = 0.3 * torch.randn(1, H, generator=g, dtype=D)
    return p, x, v0


def test_leak_only_closed_form():
    """Without synapses the ODE is an RC circuit: v(t) = vleak + (v0 - vleak) exp(-gleak t / cm);
    the fused solver is its implicit Euler: (1 + gleak dt / cm)^-N with dt = elapsed / N."""
    p, x, v0 = _small()
    p = p._replace(w=torch.zeros_like(p.w), sensory_w=torch.zeros_like(p.sensory_w))
    for elapsed, N in ((1.0, 6), (0.5, 1), (3.0, 40)):
        got = ltc_step(x, v0, p, elapsed=elapsed, unfolds=N, epsilon=0.0)
        want = p.vleak + (v0 - p.vleak) * (1 + p.gleak * elapsed / N / p.cm) ** (-N)
        assert torch.allclose(got, want, rtol=0, atol=1e-14)
    exact = p.vleak + (v0 - p.vleak) * torch.exp(-p.gleak * 1.0 / p.cm)
    got = ltc_step(x, v0, p, elapsed=1.0, unfolds=20000, epsilon=0.0)
    assert torch.allclose(got, exact, rtol=0, atol=1e-5)
    assert torch.allclose(ltc_rhs(x, v0, p), p.gleak * (p.vleak - v0) / p.cm, atol=1e-15)


@pytest.mark.parametrize("elapsed", [1.0, 0.1])
def test_fused_solver_converges_to_ode_solution(elapsed):
    solve_ivp = pytest.importorskip("scipy.integrate").solve_ivp
    p, x, v0 = _small()

    def f(t, v):
        return ltc_rhs(x, torch.from_numpy(v)[None], p)[0].numpy()

    sol = solve_ivp(f, (0.0, elapsed), v0[0].numpy(), method="DOP853", rtol=1e-12, atol=1e-14)
    ref = torch.from_numpy(sol.y[:, -1])
    Ns = (4, 16, 64, 256, 1024, 4096)
    steps = {N: ltc_step(x, v0, p, elapsed=elapsed, unfolds=N, epsilon=0.0)[0] for N in Ns}
    errs = [float((steps[N] - ref).abs().max()) for N in Ns]
    ratios = [a / b for a, b in zip(errs, errs[1:])]
    # first order (semi-implicit Euler): 4x the unfolds, 4x smaller error
    assert all(3.5 < r < 4.5 for r in ratios), (errs, ratios)
    assert errs[-1] < 4e-5 * elapsed
    # Richardson extrapolation of a first-order method is second order: ODE solution to ~1e-9
    rich = 2 * ltc_step(x, v0, p, elapsed=elapsed, unfolds=8192, epsilon=0.0)[0] - steps[4096]
    assert float((rich - ref).abs().max()) < 1e-8


def test_trajectory_with_small_steps_follows_ode():
    solve_ivp = pytest.importorskip("scipy.integrate").solve_ivp
    p, x, v0 = _small(seed=3, F_in=2, H=4)
    t_eval = np.arange(1, 41) * 0.05
    sol = solve_ivp(lambda t, v: ltc_rhs(x, torch.from_numpy(v)[None], p)[0].numpy(), (0, 2.0),
                    v0[0].numpy(), method="DOP853", t_eval=t_eval, rtol=1e-12, atol=1e-14)
    v, traj = v0, []
    for _ in t_eval:
        v = ltc_step(x, v, p, elapsed=0.05, unfolds=64, epsilon=0.0)
        traj.append(v[0])
    err = (torch.stack(traj) - torch.from_numpy(sol.y.T)).abs().max()
    assert err < 1.5e-4  # global error ~ C dt, dt = 0.05 / 64


def test_steady_state_is_root_of_rhs():
    fsolve = pytest.importorskip("scipy.optimize").fsolve
    p, x, v0 = _small(seed=2)
    v = v0
    for _ in range(200):
        v = ltc_step(x, v, p, elapsed=1.0, unfolds=6, epsilon=1e-8)
    assert float(ltc_rhs(x, v, p, epsilon=1e-8).abs().max()) < 1e-13
    assert float(ltc_rhs(x, v, p).abs().max()) < 1e-7  # epsilon is only a 1e-8 leak
    root = fsolve(lambda u: ltc_rhs(x, torch.from_numpy(u)[None], p)[0].numpy(), np.zeros(p.hidden), xtol=1e-14)
    assert np.abs(root - v[0].numpy()).max() < 1e-6
    # it does not depend on the unfolds or elapsed (a fixed point of every fused step)
    assert torch.allclose(ltc_step(x, v, p, elapsed=0.3, unfolds=2), v, rtol=0, atol=1e-14)


def test_init_ranges_and_polarity():
    g = torch.Generator().manual_seed(0)
    p = init_ltc_params(30, 40, 7, generator=g)
    for name, (lo, hi) in LTC_INIT_RANGES.items():
        t = getattr(p, name)
        assert lo <= float(t.min()) and float(t.max()) <= hi, name
        assert float(t.max() - t.min()) > 0.8 * (hi - lo), name  # uses the range
    assert set(p.erev.unique().tolist()) == {-1.0, 1.0}
    assert abs(float((p.sensory_erev < 0).double().mean()) - 1 / 3) < 0.05
    assert torch.equal(p.mask, torch.ones(40, 40)) and p.out_features == 7
    adj = torch.tensor([[1, 0], [-1, 1]])
    q = init_ltc_params(1, 2, adjacency=adj, sensory_adjacency=torch.tensor([[0, -1]]))
    assert torch.equal(q.mask, adj.abs().float()) and torch.equal(q.erev, adj.float())
    assert torch.equal(q.sensory_mask, torch.tensor([[0.0, 1.0]]))


def test_constraints():
    p = init_ltc_params(2, 3)
    p = p._replace(w=p.w - 0.5, cm=-p.cm)
    sp = constrain_ltc_params(p, "softplus")
    assert torch.equal(sp.w, F.softplus(p.w)) and torch.equal(sp.cm, F.softplus(p.cm))
    assert torch.equal(sp.vleak, p.vleak) and torch.equal(sp.sigma, p.sigma)
    assert constrain_ltc_params(p, "clip") is p
    w_before = p.w.clone()
    clip_ltc_params_(p)
    assert torch.equal(p.w, w_before.clamp(min=0)) and float(p.cm.max()) == 0.0
    with pytest.raises(ConfigError, match="constraint"):
        constrain_ltc_params(p, "relu")


def test_bad_inputs():
    p = init_ltc_params(3, 4)
    x, v = torch.randn(2, 3), torch.zeros(2, 4)
    with pytest.raises(ShapeError, match=r"\[B, 3\]"):
        ltc_step(torch.randn(2, 5), v, p)
    with pytest.raises(ShapeError, match=r"\[B, 3\]"):
        ltc_step(torch.randn(3), v, p)
    with pytest.raises(ShapeError, match=r"\[2, 4\]"):
        ltc_step(x, torch.zeros(2, 5), p)
    with pytest.raises(ShapeError, match="floating"):
        ltc_step(torch.ones(2, 3, dtype=torch.int64), v, p)
    with pytest.raises(ShapeError, match="elapsed"):
        ltc_step(x, v, p, elapsed=torch.ones(3))
    with pytest.raises(ConfigError, match="elapsed"):
        ltc_step(x, v, p, elapsed=0.0)
    with pytest.raises(ConfigError, match="unfolds"):
        ltc_step(x, v, p, unfolds=0)
    with pytest.raises(ConfigError, match="cm"):
        cm = p.cm.clone()
        cm[1] = float("nan")
        check_ltc_params(p._replace(cm=cm))
    with pytest.raises(ShapeError, match="sigma"):
        check_ltc_params(p._replace(sigma=torch.ones(3, 4)))
    with pytest.raises(ConfigError, match="out_features"):
        init_ltc_params(3, 4, 5)
