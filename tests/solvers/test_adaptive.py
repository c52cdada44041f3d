"""Adaptive embedded RK: closed forms, torchdiffeq/torchode peers, dense output, per-sample control."""
import pytest
import torch

from neurodyn.solvers import odesolve
from tests.solvers.conftest import decay, spiral_matrix


@pytest.mark.parametrize("method,rtol", [(m, r) for m in ("dopri5", "tsit5") for r in (1e-5, 1e-9)]
                         + [("bosh3", 1e-4), ("bosh3", 1e-7)])
def test_closed_form_with_dense_output(f64, method, rtol):
    A = spiral_matrix()
    y0 = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.5]])
    te = torch.linspace(0.0, 6.0, 37)                        # many outputs per step: dense output
    sol = odesolve(lambda t, y: y @ A.T, y0, te, method=method, rtol=rtol, atol=rtol * 1e-2)
    exact = torch.stack([y0 @ torch.linalg.matrix_exp(A * t).T for t in te])
    err = float((sol.ys - exact).abs().max())
    assert err < 30 * rtol * float(y0.abs().max()), err
    assert torch.equal(sol.ys[0], y0)
    # fewer accepted steps than outputs at the loose tolerance: values between steps are interpolated
    if rtol == 1e-5:
        assert int(sol.stats.n_accepted.max()) < len(te)


def _mlp_rhs(seed=0, width=16):
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(2, width, generator=g) / 2
    W2 = torch.randn(width, 2, generator=g) / 2
    return lambda t, y: torch.tanh(y @ W1) @ W2 - 0.1 * y


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_agrees_with_torchdiffeq_dopri5(f64, method):
    torchdiffeq = pytest.importorskip("torchdiffeq")
    f = _mlp_rhs()
    y0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    te = torch.linspace(0.0, 3.0, 7)
    ours = odesolve(f, y0, te, method=method, rtol=1e-8, atol=1e-10).ys
    for b in (0, 3):  # torchdiffeq alone per sample (its step control is batch-wide)
        ref = torchdiffeq.odeint(lambda t, y: f(t, y), y0[b:b + 1], te, method="dopri5", rtol=1e-9, atol=1e-11)
        assert torch.allclose(ours[:, b], ref[:, 0], atol=2e-7, rtol=0)


def test_same_steps_as_torchdiffeq_dopri5_single_sample(f64):
    # Same controller family and initial-step rule: the work for one sample matches within a few steps.
    torchdiffeq = pytest.importorskip("torchdiffeq")
    f = _mlp_rhs(seed=2)
    y0 = torch.tensor([[1.0, -1.0]])
    n = [0]

    def counted(t, y):
        n[0] += 1
        return f(t, y)

    torchdiffeq.odeint(counted, y0, torch.tensor([0.0, 5.0]), method="dopri5", rtol=1e-7, atol=1e-9)
    ours = odesolve(f, y0, [0.0, 5.0], method="dopri5", rtol=1e-7, atol=1e-9)
    assert abs(int(ours.stats.nfe) - n[0]) <= 0.15 * n[0], (int(ours.stats.nfe), n[0])


def test_agrees_with_torchode_tsit5(f64):
    to = pytest.importorskip("torchode")
    f = _mlp_rhs(seed=3)
    y0 = torch.randn(3, 2, generator=torch.Generator().manual_seed(4))
    te = torch.linspace(0.0, 2.0, 5)
    term = to.ODETerm(lambda t, y: f(t, y))
    solver = to.AutoDiffAdjoint(to.Tsit5(term=term), to.IntegralController(atol=1e-12, rtol=1e-10, term=term))
    ref = solver.solve(to.InitialValueProblem(y0=y0, t_eval=te.expand(3, -1))).ys  # [B, K, D]
    ours = odesolve(f, y0, te, method="tsit5", rtol=1e-8, atol=1e-10).ys
    assert torch.allclose(ours.transpose(0, 1), ref, atol=2e-7, rtol=0)


def test_per_sample_equals_alone_and_finished_rows_cost_nothing(f64):
    lam = torch.tensor([-0.1, -30.0, -1.0, -5.0, -0.5])
    y0 = torch.linspace(0.5, 2.0, 5)[:, None].repeat(1, 3)
    te = torch.linspace(0.0, 2.0, 4)
    rows_seen = []

    def f(t, y, lam_rows):
        rows_seen.append(y.shape[0])
        return decay(t, y, lam_rows)

    batch = odesolve(f, y0, te, method="dopri5", rtol=1e-7, atol=1e-9, args=(lam,))
    assert sum(rows_seen) == int(batch.stats.nfe.sum())          # only active rows were evaluated
    assert min(rows_seen) < 5                                     # the batch shrank as easy samples finished
    for b in range(5):
        alone = odesolve(f, y0[b:b + 1], te, method="dopri5", rtol=1e-7, atol=1e-9, args=(lam[b:b + 1],))
        assert torch.allclose(batch.ys[:, b], alone.ys[:, 0], rtol=0, atol=1e-13)
        for k in ("nfe", "n_accepted", "n_rejected"):
            assert getattr(batch.stats, k)[b] == getattr(alone.stats, k)[0]
    nfe = batch.stats.nfe
    assert nfe[1] > 3 * nfe[0]  # stiff sample works harder, the easy one does not pay for it


def test_lockstep_shares_one_step_size(f64):
    lam = torch.tensor([-0.1, -30.0, -1.0])
    y0 = torch.ones(3, 2)
    sol = odesolve(decay, y0, [0.0, 2.0], method="dopri5", rtol=1e-7, atol=1e-9, args=(lam,), batch="lockstep")
    per = odesolve(decay, y0, [0.0, 2.0], method="dopri5", rtol=1e-7, atol=1e-9, args=(lam,))
    assert len(set(sol.stats.nfe.tolist())) == 1
    assert int(sol.stats.nfe[0]) >= int(per.stats.nfe.max())
    exact = y0 * torch.exp(2.0 * lam)[:, None]
    assert torch.allclose(sol.y_final, exact, atol=1e-7, rtol=0)


def test_per_sample_output_times(f64):
    lam = torch.tensor([-1.0, -2.0])
    te = torch.tensor([[0.0, 0.0], [0.3, 1.0], [0.9, 2.5]])
    sol = odesolve(decay, torch.ones(2, 1), te, method="tsit5", rtol=1e-9, atol=1e-11, args=(lam,))
    assert torch.allclose(sol.ys[..., 0], torch.exp(te * lam), atol=1e-8, rtol=0)


def test_warm_start_first_step(f64):
    lam = torch.tensor([-1.0, -1.0])
    cold = odesolve(decay, torch.ones(2, 1), [0.0, 1.0], args=(lam,))
    warm = odesolve(decay, torch.ones(2, 1), [0.0, 1.0], args=(lam,), first_step=cold.stats.last_step)
    assert (warm.stats.nfe < cold.stats.nfe + 2).all()
    assert torch.allclose(warm.y_final, cold.y_final, atol=1e-6)
