"""Print a neuron's derived straight-line programs as typed source for compiled backends.

``neurons.symbolic.derive`` keeps every step and VJP as a list of (name, sympy expression)
assignments.  This module prints those programs, and the surrogates (parsed by the same
parser), as C++ for the CUDA kernels: one text for float and double (``scalar_t``
templates, every literal cast to ``scalar_t`` so float kernels stay in float arithmetic).
"""
from __future__ import annotations

import ast
import inspect
import math
import textwrap
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


_CXX_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _cxx_ast(node: ast.AST) -> str:
    """A surrogate's Python expression as C++, operation by operation in Python's order."""
    p = CxxPrinter()
    if isinstance(node, ast.BinOp) and type(node.op) in _CXX_OPS:
        return f"({_cxx_ast(node.left)} {_CXX_OPS[type(node.op)]} {_cxx_ast(node.right)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return f"(-{_cxx_ast(node.operand)})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name = {"sigmoid_": "sigmoid"}.get(node.func.id, node.func.id)
        if name not in p.FUNCS:
            raise NotImplementedError(f"no C++ rendering for primitive '{node.func.id}'")
        return f"{p.FUNCS[name]}({', '.join(_cxx_ast(a) for a in node.args)})"
    if isinstance(node, ast.Name):
        return p._num(math.pi) if node.id == "PI" else node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return p._num(float(node.value))
    raise NotImplementedError(f"no C++ rendering for {ast.unparse(node)!r} in a surrogate")


@lru_cache(maxsize=None)
def cxx_surrogate(name: str) -> str:
    """C++ ``scalar_t sg_<name>(scalar_t u, scalar_t alpha)`` of a surrogate from neurons/surrogate.py.

    Printed from the surrogate's own expression, not from sympy's canonical form (which
    regroups products and constants): the same operations in the same order as the Numba
    kernels run it, so the two round alike.
    """
    parse_step(SURROGATES[name], SURROGATE_EXTRA)  # checks it is in the step language
    fdef = ast.parse(textwrap.dedent(inspect.getsource(SURROGATES[name]))).body[0]
    ret = [s for s in fdef.body if isinstance(s, ast.Return)]
    if len(fdef.body) != 1 or len(ret) != 1:
        raise NotImplementedError(f"surrogate '{name}' must be a single return expression")
    return ("template <typename scalar_t>\n"
            f"ND_DEV scalar_t sg_{name}(scalar_t u, scalar_t alpha) {{\n"
            f"    return {_cxx_ast(ret[0].value)};\n}}\n")


def cxx_step(model) -> str:
    """C++ step and VJP device functions of a neuron model (from its derived programs)."""
    d = model.derived
    step = _cxx_function(d.step_name, d.args, d.step_program, d.step_returns)
    vjp = _cxx_function(f"{d.step_name}_vjp", d.vjp_args, d.vjp_program, d.vjp_returns)
    return step + "\n" + vjp


__all__ = ["CxxPrinter", "cxx_step", "cxx_surrogate", "spike", "spike_grad"]
