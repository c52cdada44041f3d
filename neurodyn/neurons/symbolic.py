"""Derive a neuron's backward pass from its one forward definition.

A neuron's update is a straight-line Python function (each name assigned once, then
``return out, new_state...``) over scalars, using only arithmetic and the primitives
``exp, log, tanh, sigmoid, spike``.  This module parses it with ``ast``, turns each
assignment into a sympy expression, and generates by reverse-mode differentiation a
vector-Jacobian product function in the same restricted language.  The generated
source is then rendered for every backend (torch, Numba, CUDA C), so no backend keeps
a hand-written copy of the math that could drift from the definition.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import sympy

from ..errors import ConfigError


class spike(sympy.Function):  # noqa: N801 - the name is the primitive's name
    """Heaviside step H(u) = [u >= 0]; its derivative is the surrogate ``spike_grad``."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return spike_grad(self.args[0])


class spike_grad(sympy.Function):  # noqa: N801
    """Surrogate derivative of ``spike``; never differentiated again."""

    nargs = 1


class sigmoid(sympy.Function):  # noqa: N801
    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sigmoid(self.args[0]) * (1 - sigmoid(self.args[0]))


PRIMITIVES = {
    "exp": sympy.exp,
    "log": sympy.log,
    "tanh": sympy.tanh,
    "sigmoid": sigmoid,
    "spike": spike,
}


@dataclass(frozen=True)
class StepSource:
    """A parsed step function: argument names, assignments and outputs (all sympy)."""

    name: str
    args: tuple[str, ...]
    assigns: tuple[tuple[str, sympy.Expr], ...]
    outputs: tuple[sympy.Expr, ...]
    source: str


def parse_step(fn: Callable, extra: dict | None = None) -> StepSource:
    """Parse a straight-line step function into sympy assignments.

    ``extra`` adds names to the primitive language (e.g. ``abs_`` and ``relu`` for surrogates).

    Raises ConfigError naming the offending line if the function is not straight-line
    (loops, branches, reassignment, unknown calls).
    """
    src = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(src)
    fdef = tree.body[0]
    if not isinstance(fdef, ast.FunctionDef):
        raise ConfigError(f"{fn.__name__}: step must be a plain function")
    args = tuple(a.arg for a in fdef.args.args)
    symbols: dict[str, sympy.Expr] = {a: sympy.Symbol(a, real=True) for a in args}
    env = {**PRIMITIVES, **(extra or {})}
    assigns: list[tuple[str, sympy.Expr]] = []
    outputs: tuple[sympy.Expr, ...] | None = None
    body = [s for s in fdef.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    for stmt in body:
        where = f"{fn.__name__} line {stmt.lineno}"
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            if name in symbols:
                raise ConfigError(f"{where}: '{name}' is assigned twice; step functions must be single-assignment")
            expr = _eval(stmt.value, symbols, env, where)
            sym = sympy.Symbol(name, real=True)
            symbols[name] = sym
            assigns.append((name, expr))
        elif isinstance(stmt, ast.Return):
            if outputs is not None:
                raise ConfigError(f"{where}: only one return allowed")
            vals = stmt.value.elts if isinstance(stmt.value, ast.Tuple) else [stmt.value]
            outputs = tuple(_eval(v, symbols, env, where) for v in vals)
        else:
            raise ConfigError(f"{where}: only single-name assignments and one return are allowed in a step")
    if outputs is None:
        raise ConfigError(f"{fn.__name__}: step has no return")
    return StepSource(fn.__name__, args, tuple(assigns), outputs, src)


def _eval(node: ast.AST, symbols: dict, env: dict, where: str) -> sympy.Expr:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id not in symbols and sub.id not in env:
            raise ConfigError(f"{where}: unknown name '{sub.id}' (allowed primitives: {sorted(env)})")
        if isinstance(sub, (ast.IfExp, ast.Compare, ast.BoolOp, ast.Subscript, ast.Attribute, ast.Lambda)):
            raise ConfigError(f"{where}: {type(sub).__name__} is not allowed in a step; use arithmetic and spike()")
    code = compile(ast.Expression(body=node), where, "eval")
    return sympy.sympify(eval(code, {"__builtins__": {}}, {**env, **symbols}))  # noqa: S307 - parsed and checked above


def _inline(step: StepSource) -> tuple[dict[str, sympy.Expr], tuple[sympy.Expr, ...]]:
    """Express every intermediate and output in terms of the arguments only."""
    full: dict[str, sympy.Expr] = {}
    subs: dict[sympy.Symbol, sympy.Expr] = {}
    for name, expr in step.assigns:
        e = expr.xreplace(subs)
        full[name] = e
        subs[sympy.Symbol(name, real=True)] = e
    return full, tuple(o.xreplace(subs) for o in step.outputs)


@dataclass(frozen=True)
class Derived:
    """Generated Python source of a step and of its VJP, in the primitive language."""

    step_name: str
    args: tuple[str, ...]
    n_outputs: int
    step_src: str
    vjp_src: str
    vjp_args: tuple[str, ...]
    vjp_outputs: tuple[str, ...]
    # straight-line (name, sympy expr) programs, for printers of other languages
    step_program: tuple[tuple[str, sympy.Expr], ...]
    step_returns: tuple[sympy.Expr, ...]
    vjp_program: tuple[tuple[str, sympy.Expr], ...]
    vjp_returns: tuple[sympy.Expr, ...]


def _pystr(expr: sympy.Expr) -> str:
    return _PyPrinter().doprint(expr)


class _PyPrinter(sympy.printing.str.StrPrinter):
    """Print sympy as plain Python arithmetic that works on floats and tensors alike."""

    def _print_Pow(self, expr, rational=False):
        b, e = expr.as_base_exp()
        if e == -1:
            return f"(1.0/({self._print(b)}))"
        if e.is_Integer and 0 < int(e) <= 3:
            return "(" + "*".join([f"({self._print(b)})"] * int(e)) + ")"
        if e.is_Integer and -3 <= int(e) < 0:
            return "(1.0/(" + "*".join([f"({self._print(b)})"] * -int(e)) + "))"
        return f"(({self._print(b)})**({self._print(e)}))"

    def _print_Rational(self, expr):
        return f"({float(expr)!r})"

    def _print_Integer(self, expr):
        return f"{float(expr)!r}"

    def _print_Float(self, expr):
        return repr(float(expr))


@lru_cache(maxsize=None)
def derive(fn: Callable) -> Derived:
    """Parse ``fn`` and generate its step and VJP source.

    VJP signature: ``vjp(*args, g_0, ..., g_{k-1}) -> (d_arg0, ..., d_argn)`` where ``g_i``
    is the cotangent of output ``i``.
    """
    step = parse_step(fn)
    _, outs = _inline(step)
    arg_syms = [sympy.Symbol(a, real=True) for a in step.args]
    g_syms = [sympy.Symbol(f"g_{i}", real=True) for i in range(len(outs))]
    grads = []
    for a in arg_syms:
        grads.append(sympy.Add(*[g * sympy.diff(o, a) for g, o in zip(g_syms, outs)]))
    # Common subexpressions keep the generated code close to what one would write by hand.
    repl, reduced = sympy.cse(grads, symbols=sympy.numbered_symbols("_c"), optimizations="basic")
    vjp_args = tuple(step.args) + tuple(str(g) for g in g_syms)
    vjp_outputs = tuple(f"d_{a}" for a in step.args)
    lines = [f"def {step.name}_vjp({', '.join(vjp_args)}):"]
    for sym, e in repl:
        lines.append(f"    {sym} = {_pystr(e)}")
    lines.append("    return (" + ", ".join(_pystr(e) for e in reduced) + ",)")
    vjp_src = "\n".join(lines) + "\n"

    slines = [f"def {step.name}({', '.join(step.args)}):"]
    for name, e in step.assigns:
        slines.append(f"    {name} = {_pystr(e)}")
    slines.append("    return (" + ", ".join(_pystr(o) for o in step.outputs) + ",)")
    step_src = "\n".join(slines) + "\n"
    return Derived(
        step_name=step.name,
        args=step.args,
        n_outputs=len(outs),
        step_src=step_src,
        vjp_src=vjp_src,
        vjp_args=vjp_args,
        vjp_outputs=vjp_outputs,
        step_program=step.assigns,
        step_returns=step.outputs,
        vjp_program=tuple((str(s), e) for s, e in repl),
        vjp_returns=tuple(reduced),
    )


def compile_source(src: str, name: str, namespace: dict) -> Callable:
    """Exec generated source in ``namespace`` (the backend's primitives) and return ``name``."""
    ns = dict(namespace)
    exec(compile(src, f"<neurodyn:{name}>", "exec"), ns)  # noqa: S102 - source generated by derive()
    return ns[name]
