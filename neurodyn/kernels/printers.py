"""Print a neuron's derived straight-line programs as typed source for compiled backends.

``neurons.symbolic.derive`` keeps every step and VJP as a list of (name, sympy expression)
assignments.  This module prints those programs, and the surrogates (parsed by the same
parser), as C++ for the CUDA kernels: one text for float and double (``scalar_t``
templates, every literal cast to ``scalar_t`` so float kernels stay in float arithmetic).
"""
from __future__ import annotations

import math
from functools import lru_cache

import sympy
from sympy.printing.str import StrPrinter

from ..neurons.surrogate import SURROGATES
from ..neurons.symbolic import parse_step, sigmoid, spike, spike_grad


class abs_(sympy.Function):  # noqa: N801 - primitive names as written in surrogates
    nargs = 1


class relu(sympy.Function):  # noqa: N801
    nargs = 1


# Names a surrogate may use beyond the step language (see neurons/surrogate.py).
SURROGATE_EXTRA = {"abs_": abs_, "relu": relu, "sigmoid_": sigmoid, "PI": sympy.pi}


class CxxPrinter(StrPrinter):
    """sympy -> C++ expression over ``scalar_t``; primitives become ``nd_*`` device functions."""

    FUNCS = {"exp": "exp", "log": "log", "tanh": "tanh", "sigmoid": "nd_sigmoid", "spike": "nd_spike",
             "spike_grad": "spike_grad", "abs_": "fabs", "relu": "nd_relu"}

    def _num(self, v: float) -> str:
        return f"scalar_t({v!r})"

    def _print_Float(self, expr):
        return self._num(float(expr))

    def _print_Integer(self, expr):
        return self._num(float(expr))

    def _print_Rational(self, expr):
        return self._num(float(expr))

    def _print_Pi(self, expr):
        return self._num(math.pi)

    def _print_Pow(self, expr, rational=False):
        b, e = expr.as_base_exp()
        base = f"({self._print(b)})"
        if e.is_Integer and 0 < int(e) <= 4:
            return "(" + "*".join([base] * int(e)) + ")"
        if e.is_Integer and -4 <= int(e) < 0:
            return f"({self._num(1.0)}/(" + "*".join([base] * -int(e)) + "))"
        if e == sympy.Rational(1, 2):
            return f"sqrt{base}"
        return f"pow({base}, {self._print(e)})"

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name not in self.FUNCS:
            raise NotImplementedError(f"no C++ rendering for primitive '{name}'")
        return f"{self.FUNCS[name]}({', '.join(self._print(a) for a in expr.args)})"

    _print_exp = _print_log = _print_tanh = _print_Function

    def _print_Abs(self, expr):
        return f"fabs({self._print(expr.args[0])})"


def _cxx_function(name: str, args: tuple[str, ...], program, returns) -> str:
    """A C++ device function: inputs by value, outputs through references r0, r1, ..."""
    p = CxxPrinter()
    params = [f"scalar_t {a}" for a in args] + [f"scalar_t& r{k}" for k in range(len(returns))]
    lines = ["template <typename scalar_t>", f"ND_DEV void {name}({', '.join(params)}) {{"]
    for var, expr in program:
        lines.append(f"    const scalar_t {var} = {p.doprint(expr)};")
    for k, expr in enumerate(returns):
        lines.append(f"    r{k} = {p.doprint(expr)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=None)
def cxx_surrogate(name: str) -> str:
    """C++ ``scalar_t name(scalar_t u, scalar_t alpha)`` of a surrogate from neurons/surrogate.py."""
    src = parse_step(SURROGATES[name], SURROGATE_EXTRA)
    p = CxxPrinter()
    lines = ["template <typename scalar_t>", f"ND_DEV scalar_t sg_{name}(scalar_t u, scalar_t alpha) {{"]
    for var, expr in src.assigns:
        lines.append(f"    const scalar_t {var} = {p.doprint(expr)};")
    lines.append(f"    return {p.doprint(src.outputs[0])};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def cxx_step(model) -> str:
    """C++ step and VJP device functions of a neuron model (from its derived programs)."""
    d = model.derived
    step = _cxx_function(d.step_name, d.args, d.step_program, d.step_returns)
    vjp = _cxx_function(f"{d.step_name}_vjp", d.vjp_args, d.vjp_program, d.vjp_returns)
    return step + "\n" + vjp


__all__ = ["CxxPrinter", "cxx_step", "cxx_surrogate", "spike", "spike_grad"]
