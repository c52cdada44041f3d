"""ODE solvers with per-sample step control and regularizable heuristics (Pal et al. 2021).

Public surface: ``odesolve`` (fixed-step euler/midpoint/rk4, adaptive bosh3/dopri5/tsit5; backprop
or continuous-adjoint gradients; per-sample or lockstep batches), ``ODESolution``, ``SolverStats``,
the regularizers ``SolverRegularization`` / ``solver_regularization``, and the tableaus as data
(``TABLEAUS``, ``ButcherTableau``).  The models solved with them (``NeuralODE``, ``ODELTC``) are in ``nn.ode``.
"""
from .regularization import REG_MODES, SolverRegularization, solver_regularization
from .solve import BATCH_MODES, GRAD_MODES, ODESolution, odesolve
from .stats import LocalStep, SolverStats
from .tableaus import ADAPTIVE_METHODS, FIXED_METHODS, TABLEAUS, ButcherTableau, get_tableau

__all__ = ["odesolve", "ODESolution", "SolverStats", "LocalStep", "SolverRegularization", "solver_regularization",
           "ButcherTableau", "TABLEAUS", "FIXED_METHODS", "ADAPTIVE_METHODS", "get_tableau",
           "GRAD_MODES", "BATCH_MODES", "REG_MODES"]
