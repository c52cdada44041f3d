"""Models solved by ``odesolve``: a neural ODE around any ``nn.Module`` vector field, and the LTC
layer of ``neurodyn.nn.LTC`` integrated as an ODE of ``neurons.ltc.ltc_rhs`` (same parameters as the
fused semi-implicit step, so one model can be solved both ways)."""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import ConfigError
from ..neurons.ltc import LTCParams, ltc_output, ltc_rhs
from .ltc import LTC, _check_sequence, _elapsed_steps, _initial_state
from ..solvers.solve import BATCH_MODES, GRAD_MODES, ODESolution, odesolve
from ..solvers.stats import SolverStats
from ..solvers.tableaus import get_tableau

Tensor = torch.Tensor


class _Solved(nn.Module):
    """Holds and checks the solver options shared by the models below."""

    def __init__(self, method: str, rtol: Optional[float], atol: Optional[float], step_size: Optional[float],
                 grad: str, batch: str, sample_local: bool, max_steps: int) -> None:
        super().__init__()
        get_tableau(method)
        if grad not in GRAD_MODES:
            raise ConfigError(f"unknown grad mode {grad!r}; choose one of {list(GRAD_MODES)}")
        if batch not in BATCH_MODES:
            raise ConfigError(f"unknown batch mode {batch!r}; choose one of {list(BATCH_MODES)}")
        self.method, self.rtol, self.atol, self.step_size = method, rtol, atol, step_size
        self.grad, self.batch, self.sample_local, self.max_steps = grad, batch, bool(sample_local), max_steps
        self.stats: Optional[SolverStats] = None  # of the last forward call

    def solver_options(self) -> dict:
        return dict(method=self.method, rtol=self.rtol, atol=self.atol, step_size=self.step_size, grad=self.grad,
                    batch=self.batch, sample_local=self.sample_local, max_steps=self.max_steps)


class NeuralODE(_Solved):
    """``y0 [B, *S] -> ODESolution`` of ``dy/dt = func(t, y, *args)`` (Chen et al. 2018).

    ``func`` is any ``nn.Module`` called as ``func(t [b], y [b, *S], *args)`` on the rows still
    integrating (see ``odesolve``); ``t_span`` the default output times ``[K]`` (start first).
    Solver options as ``odesolve``; the adjoint differentiates ``func.parameters()``.  The stats of
    the last call are kept in ``self.stats`` (regularize them with ``SolverRegularization``).
    """

    def __init__(self, func: nn.Module, t_span: Sequence[float] = (0.0, 1.0), *, method: str = "dopri5",
                 rtol: Optional[float] = None, atol: Optional[float] = None, step_size: Optional[float] = None,
                 grad: str = "backprop", batch: str = "per_sample", sample_local: bool = False,
                 max_steps: int = 10_000) -> None:
        super().__init__(method, rtol, atol, step_size, grad, batch, sample_local, max_steps)
        if not isinstance(func, nn.Module):
            raise ConfigError(f"NeuralODE expects an nn.Module vector field, got {type(func).__name__}")
        self.func = func
        self.t_span = tuple(float(x) for x in t_span)

    def forward(self, y0: Tensor, t_eval: Union[None, Tensor, Sequence[float]] = None, args: Sequence[Tensor] = (),
                generator: Optional[torch.Generator] = None) -> ODESolution:
        sol = odesolve(self.func, y0, self.t_span if t_eval is None else t_eval, args=args, generator=generator,
                       **self.solver_options())
        self.stats = sol.stats
        return sol

    def extra_repr(self) -> str:
        return f"t_span={self.t_span}, method='{self.method}', grad='{self.grad}', batch='{self.batch}'"


class ODELTC(_Solved):
    """The LTC layer ``cell`` (a ``neurodyn.nn.LTC``, parameters shared) with each input step solved
    by ``odesolve`` on ``ltc_rhs`` instead of the fused semi-implicit unfolds.

    ``x [T, B, F] -> y [T, B, M]``; the input is held constant over each step of length ``elapsed``
    (float, ``[T]`` or ``[T, B]``; default 1.0), as in the fused step.  The cell's ``epsilon`` leak
    is kept, so as ``unfolds`` grows the fused step converges to this solution.  Stats of all T
    solves are summed into ``self.stats``; adaptive methods warm-start each step from the last.
    """

    def __init__(self, cell: LTC, *, method: str = "dopri5", rtol: Optional[float] = None,
                 atol: Optional[float] = None, step_size: Optional[float] = None, grad: str = "backprop",
                 batch: str = "per_sample", sample_local: bool = False, max_steps: int = 10_000) -> None:
        super().__init__(method, rtol, atol, step_size, grad, batch, sample_local, max_steps)
        if not isinstance(cell, LTC):
            raise ConfigError(f"ODELTC expects a neurodyn.nn.LTC cell, got {type(cell).__name__}")
        self.cell = cell

    def rhs(self, p: LTCParams) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
        """``f(t, v [b, H], x [b, F]) -> dv/dt [b, H]`` for effective parameters ``p`` (``t`` unused:
        the input is held constant over the step)."""
        eps = self.cell.epsilon
        return lambda t, v, x: ltc_rhs(x, v, p, eps)

    def forward(self, x: Tensor, state: Optional[Tensor] = None, elapsed: Union[None, float, Tensor] = None,
                return_state: bool = False, generator: Optional[torch.Generator] = None):
        _check_sequence("ODELTC", x, self.cell.in_features)
        v = _initial_state("ODELTC", state, x, self.cell.hidden)
        steps = _elapsed_steps("ODELTC", elapsed, x, positive=True)
        T, B = x.shape[0], x.shape[1]
        opts = self.solver_options()
        # Effective parameters once per call; the adjoint differentiates them and autograd carries
        # their gradients on to the stored ones (through softplus where used).
        p = self.cell.params()
        f = self.rhs(p)
        if self.grad == "adjoint":
            opts["adjoint_params"] = tuple(t for t in p if t.requires_grad)
        stats, first, out = None, None, []
        zero = x.new_zeros(B)
        for t in range(T):
            end = steps[t] if isinstance(steps, Tensor) else torch.full_like(zero, steps)
            if first is not None:
                opts["first_step"] = first
            sol = odesolve(f, v, torch.stack([zero, end]), args=(x[t],), generator=generator, **opts)
            v = sol.y_final
            out.append(v)
            stats = sol.stats if stats is None else stats + sol.stats
            if get_tableau(self.method).adaptive:
                first = sol.stats.last_step
        self.stats = stats
        y = ltc_output(torch.stack(out), p)
        return (y, v) if return_state else y

    def extra_repr(self) -> str:
        return f"method='{self.method}', grad='{self.grad}', batch='{self.batch}'"
