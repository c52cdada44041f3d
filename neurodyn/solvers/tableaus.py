"""Explicit Runge-Kutta methods as data: Butcher tableaus, embedded error weights, dense output.

A method is a ``ButcherTableau``; ``stepper.rk_step`` is the one step that runs any of them.
Dense output is stored as polynomials ``b_i(theta)`` (``y(t + theta h) = y + h sum_i b_i(theta) k_i``):

* tsit5: the method's own continuous extension (Tsitouras 2011, the seven factored quartics);
* dopri5: the quartic through ``y0, y1, f0, f1`` and the method's 4th-order midpoint value
  ``y(1/2) = y0 + h sum_i c_mid_i k_i`` (Shampine 1986, as torchdiffeq);
* bosh3: the cubic Hermite through ``y0, y1, f0, f1``.

The Hermite ones are turned into ``b_i(theta)`` here by solving the interpolation conditions once
(``_hermite_weights``), so the stepper only ever evaluates polynomials.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit RK method with ``s`` stages.

    ``c [s]`` nodes, ``a`` rows of the strictly lower triangle (row ``i`` has ``i`` entries),
    ``b [s]`` weights of the propagated solution (order ``order``), ``b_err [s]`` the weights of
    the embedded error estimate ``err = h sum_i b_err_i k_i`` (None: fixed-step method),
    ``err_order`` the order of the embedded (lower-order) solution, ``b_theta [s, P]`` the
    dense-output polynomials' coefficients (power 0..P-1 of theta).  ``fsal``: the last stage is
    evaluated at the new solution (first same as last), derived from the data.
    """

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_err: Optional[tuple[float, ...]] = None
    err_order: Optional[int] = None
    b_theta: Optional[np.ndarray] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        s = len(self.c)
        if len(self.b) != s or len(self.a) != s or any(len(row) != i for i, row in enumerate(self.a)):
            raise ConfigError(f"tableau {self.name}: c, a, b do not describe {s} explicit stages")
        if abs(sum(self.b) - 1.0) > 1e-12:
            raise ConfigError(f"tableau {self.name}: weights b sum to {sum(self.b)}, not 1")
        for i, row in enumerate(self.a):
            if abs(sum(row) - self.c[i]) > 1e-12:
                raise ConfigError(f"tableau {self.name}: row {i} of a does not sum to c[{i}]")
        if self.adaptive:
            if len(self.b_err) != s or abs(sum(self.b_err)) > 1e-12 or self.err_order is None:
                raise ConfigError(f"tableau {self.name}: b_err must have {s} entries summing to 0 and an err_order")
            if not self.fsal or self.b_theta is None:
                # Dense output uses f at the new point, which FSAL methods have for free.
                raise ConfigError(f"tableau {self.name}: adaptive methods here must be FSAL with dense output")

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def adaptive(self) -> bool:
        return self.b_err is not None

    @property
    def fsal(self) -> bool:
        return self.stages > 1 and self.c[-1] == 1.0 and tuple(self.a[-1]) == tuple(self.b[:-1]) \
            and self.b[-1] == 0.0


def _hermite_weights(b: tuple[float, ...], c_mid: Optional[tuple[float, ...]] = None) -> np.ndarray:
    """``b_theta [s, P]`` of the Hermite interpolant through y0, y1 (= y0 + h sum b k), f0 = k_1,
    f1 = k_s (FSAL) and, if ``c_mid`` is given, the midpoint y0 + h sum c_mid k (quartic; else cubic).

    Interpolation conditions on q(theta) = sum_p q_p theta^p, for each datum a unit right-hand side:
    q(0) = 0 (the y0 part is added by the stepper), q'(0) = f0, q(1) = y1 - y0, q'(1) = f1, q(1/2) = ym - y0.
    """
    P = 5 if c_mid is not None else 4
    powers = np.arange(P)
    rows = [powers == 0,                                     # q(0)
            np.where(powers == 1, 1.0, 0.0),                 # q'(0)
            np.ones(P),                                      # q(1)
            powers.astype(float)]                            # q'(1)
    if c_mid is not None:
        rows.append(0.5 ** powers)                           # q(1/2)
    basis = np.linalg.inv(np.array(rows, dtype=float))       # column j: polynomial of datum j
    s = len(b)
    out = np.zeros((s, P))
    out[0] += basis[:, 1]                                    # f0 = k_1
    out[s - 1] += basis[:, 3]                                # f1 = k_s
    out += np.outer(b, basis[:, 2])                          # (y1 - y0) / h = sum b k
    if c_mid is not None:
        out += np.outer(c_mid, basis[:, 4])                  # (ym - y0) / h = sum c_mid k
    return out


def _factored_quartics(scales: list[float], roots: list[list[complex]], theta_power: list[int]) -> np.ndarray:
    """Polynomial coefficients (power 0..4) of ``scale * theta^m * prod (theta - r)``."""
    out = np.zeros((len(scales), 5))
    for i, (sc, rs, m) in enumerate(zip(scales, roots, theta_power)):
        poly = np.polynomial.polynomial.polyfromroots(rs) if rs else np.array([1.0])
        poly = np.concatenate([np.zeros(m), np.real(poly)]) * sc
        out[i, : len(poly)] = poly
    return out


EULER = ButcherTableau("euler", 1, c=(0.0,), a=((),), b=(1.0,))
MIDPOINT = ButcherTableau("midpoint", 2, c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0))
RK4 = ButcherTableau("rk4", 4, c=(0.0, 0.5, 0.5, 1.0),
                     a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), b=(1 / 6, 1 / 3, 1 / 3, 1 / 6))

# Bogacki-Shampine 3(2).
_BS_B = (2 / 9, 1 / 3, 4 / 9, 0.0)
BOSH3 = ButcherTableau(
    "bosh3", 3, c=(0.0, 0.5, 0.75, 1.0),
    a=((), (0.5,), (0.0, 0.75), _BS_B[:3]), b=_BS_B,
    b_err=tuple(x - y for x, y in zip(_BS_B, (7 / 24, 1 / 4, 1 / 3, 1 / 8))), err_order=2,
    b_theta=_hermite_weights(_BS_B))

# Dormand-Prince 5(4) (Dormand & Prince 1980); midpoint weights of Shampine (1986).
_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_BHAT = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_DP_CMID = (6025192743 / 30085553152 / 2, 0.0, 51252292925 / 65400821598 / 2, -2691868925 / 45128329728 / 2,
            187940372067 / 1594534317056 / 2, -1776094331 / 19743644256 / 2, 11237099 / 235043384 / 2)
DOPRI5 = ButcherTableau(
    "dopri5", 5, c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
       (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
       (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656), _DP_B[:6]),
    b=_DP_B, b_err=tuple(x - y for x, y in zip(_DP_B, _DP_BHAT)), err_order=4,
    b_theta=_hermite_weights(_DP_B, _DP_CMID))

# Tsitouras 5(4) (Tsitouras 2011); error weights with the sign of the last one corrected
# (OrdinaryDiffEq.jl issue 1654, diffrax issue 98).
_TS_B = (0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
         2.324710524099774, 0.0)
TSIT5 = ButcherTableau(
    "tsit5", 5, c=(0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
    a=((), (0.161,), (-0.008480655492356989, 0.335480655492357),
       (2.8971530571054935, -6.359448489975075, 4.3622954328695815),
       (5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525),
       (5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.02826905039406838),
       _TS_B[:6]),
    b=_TS_B,
    b_err=(0.00178001105222577714, 0.0008164344596567469, -0.007880878010261995, 0.1447110071732629,
           -0.5823571654525552, 0.45808210592918697, -1 / 66),
    err_order=4,
    b_theta=_factored_quartics(
        scales=[-1.0530884977290216, 0.1017, 2.490627285651252793, -16.54810288924490272,
                47.37952196281928122, -34.87065786149660974, 2.5],
        roots=[[1.3299890189751412] + list(np.roots([1.0, -1.4364028541716351, 0.7139816917074209])),
               list(np.roots([1.0, -2.1966568338249754, 1.2949852507374631])),
               list(np.roots([1.0, -2.38535645472061657, 1.57803468208092486])),
               [1.21712927295533244, 0.61620406037800089],
               [1.203071208372362603, 0.658047292653547382],
               [1.2, 0.666666666666666667],
               [1.0, 0.6]],
        theta_power=[1, 2, 2, 2, 2, 2, 2]))

TABLEAUS: dict[str, ButcherTableau] = {t.name: t for t in (EULER, MIDPOINT, RK4, BOSH3, DOPRI5, TSIT5)}
FIXED_METHODS = tuple(n for n, t in TABLEAUS.items() if not t.adaptive)
ADAPTIVE_METHODS = tuple(n for n, t in TABLEAUS.items() if t.adaptive)


def get_tableau(method: str) -> ButcherTableau:
    """The tableau named ``method``; ConfigError naming the choices for an unknown one."""
    if not isinstance(method, str) or method not in TABLEAUS:
        raise ConfigError(f"unknown ODE method {method!r}; choose one of {list(TABLEAUS)}")
    return TABLEAUS[method]
