"""Translate small scalar Python functions (the Numba-style loops of ``core.confidence``) to C++.

The event kernels compile the confidence statistics and measures from their one Python
definition: Numba compiles the source as it is, and this module prints the same functions as
``ND_DEV`` C++ for the CUDA kernels.  It covers what those functions use and refuses the rest
with a ``ValueError`` naming the construct: assignments (tuple unpacking from a call),
augmented assignments, ``if``/``elif``/``else``, ``for`` over ``range``, ``break``,
``return`` of one value or a tuple (a tuple comes back through reference arguments ``r0``,
``r1``, ...), arithmetic, comparisons, ``and``/``or``/``not``, ``math.exp``/``exp``,
``math.log``/``log``, ``math.inf``, indexing 1-D arrays and ``a.shape[0]`` (an extra length
argument ``a_n``).  Every local is declared where first assigned (``ndi`` for an integer
literal, else ``auto``), and must not be used outside the block that first assigns it.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Callable

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_CMPOPS = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}
_CALLS = {"exp": "exp", "log": "log"}


def to_cxx(fn: Callable, types: dict[str, str] | None = None, returns: tuple[str, ...] | None = None) -> str:
    """C++ source of ``fn``.  types: C++ type per argument (default ``double``; ``"array"``: a
    ``const double*`` with its length ``<name>_n`` after it).  returns: the C++ types of a tuple
    return (reference arguments r0, r1, ... appended; the function is void); None: one value,
    returned as ``double``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    f = tree.body[0]
    if not isinstance(f, ast.FunctionDef):
        raise ValueError(f"{fn.__name__}: not a function definition")
    types = dict(types or {})
    params, arrays = [], set()
    for a in f.args.args:
        ty = types.get(a.arg, "double")
        if ty == "array":
            params += [f"const double* ND_RESTRICT {a.arg}", f"ndi {a.arg}_n"]
            arrays.add(a.arg)
        else:
            params.append(f"{ty} {a.arg}")
    if returns:
        params += [f"{ty}& r{i}" for i, ty in enumerate(returns)]
    tr = _Translator(fn.__name__, arrays, returns)
    body = tr.block(f.body, 1, scope=set(a.arg for a in f.args.args))
    head = f"ND_DEV {'void' if returns else 'double'} {f.name}({', '.join(params)})"
    return head + " {\n" + "\n".join(body) + "\n}\n"


class _Translator:
    def __init__(self, name: str, arrays: set[str], returns: tuple[str, ...] | None) -> None:
        self.name, self.arrays, self.returns = name, arrays, returns

    def fail(self, node: ast.AST, what: str):
        raise ValueError(f"{self.name}, line {getattr(node, 'lineno', '?')}: {what} is not translated to C++")

    # statements -----------------------------------------------------------------------------
    def block(self, stmts: list[ast.stmt], depth: int, scope: set[str]) -> list[str]:
        out, local = [], set(scope)
        for s in stmts:
            if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
                continue  # docstring
            out += self.stmt(s, depth, local)
        return out

    def stmt(self, s: ast.stmt, depth: int, scope: set[str]) -> list[str]:
        ind = "    " * depth
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1:
                self.fail(s, "a chained assignment")
            t = s.targets[0]
            if isinstance(t, ast.Name):
                integer = isinstance(s.value, ast.Constant) and type(s.value.value) is int
                decl = "" if t.id in scope else "ndi " if integer else "auto "
                scope.add(t.id)
                return [f"{ind}{decl}{t.id} = {self.expr(s.value, scope)};"]
            if isinstance(t, ast.Tuple) and isinstance(s.value, ast.Call):
                names = [e.id if isinstance(e, ast.Name) else self.fail(e, "unpacking into a non-name") for e in t.elts]
                missing = [n for n in names if n not in scope]
                if missing:
                    self.fail(s, f"unpacking into undeclared names {missing} (declare them first)")
                call = self.expr(s.value, scope)
                return [f"{ind}{call[:-1]}, {', '.join(names)});"]
            self.fail(s, "this assignment")
        if isinstance(s, ast.AugAssign):
            if not isinstance(s.target, ast.Name) or type(s.op) not in _BINOPS:
                self.fail(s, "this augmented assignment")
            self.use(s.target.id, s, scope)
            return [f"{ind}{s.target.id} {_BINOPS[type(s.op)]}= {self.expr(s.value, scope)};"]
        if isinstance(s, ast.If):
            out = [f"{ind}if ({self.expr(s.test, scope)}) {{"] + self.block(s.body, depth + 1, scope)
            if s.orelse:
                out += [f"{ind}}} else {{"] + self.block(s.orelse, depth + 1, scope)
            return out + [f"{ind}}}"]
        if isinstance(s, ast.For):
            it = s.iter
            if not (isinstance(s.target, ast.Name) and isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
                    and it.func.id == "range" and 1 <= len(it.args) <= 2 and not s.orelse):
                self.fail(s, "a loop other than 'for i in range(a[, b])'")
            lo, hi = ("0", self.expr(it.args[0], scope)) if len(it.args) == 1 else \
                (self.expr(it.args[0], scope), self.expr(it.args[1], scope))
            v = s.target.id
            inner = set(scope) | {v}
            return [f"{ind}for (ndi {v} = {lo}; {v} < {hi}; ++{v}) {{"] + self.block(s.body, depth + 1, inner) \
                + [f"{ind}}}"]
        if isinstance(s, ast.Break):
            return [f"{ind}break;"]
        if isinstance(s, ast.Return):
            if self.returns:
                if not isinstance(s.value, ast.Tuple) or len(s.value.elts) != len(self.returns):
                    self.fail(s, f"a return that is not a tuple of {len(self.returns)}")
                sets = " ".join(f"r{i} = {self.expr(e, scope)};" for i, e in enumerate(s.value.elts))
                return [f"{ind}{{ {sets} return; }}"]
            if isinstance(s.value, ast.Tuple):
                self.fail(s, "a tuple return without 'returns' types")
            return [f"{ind}return {self.expr(s.value, scope)};"]
        self.fail(s, type(s).__name__)

    def use(self, name: str, node: ast.AST, scope: set[str]) -> None:
        if name not in scope:
            self.fail(node, f"'{name}' used where it is not assigned (outside the block that first assigns it?)")

    # expressions ----------------------------------------------------------------------------
    def expr(self, e: ast.expr, scope: set[str]) -> str:
        if isinstance(e, ast.Constant) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool):
            return repr(float(e.value)) if isinstance(e.value, float) else str(e.value)
        if isinstance(e, ast.Name):
            self.use(e.id, e, scope)
            return e.id
        if isinstance(e, ast.BinOp) and type(e.op) in _BINOPS:
            return f"({self.expr(e.left, scope)} {_BINOPS[type(e.op)]} {self.expr(e.right, scope)})"
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.Not)):
            return f"({'-' if isinstance(e.op, ast.USub) else '!'}{self.expr(e.operand, scope)})"
        if isinstance(e, ast.BoolOp):
            op = " && " if isinstance(e.op, ast.And) else " || "
            return "(" + op.join(self.expr(v, scope) for v in e.values) + ")"
        if isinstance(e, ast.Compare):
            if len(e.ops) != 1 or type(e.ops[0]) not in _CMPOPS:
                self.fail(e, "a chained or unsupported comparison")
            return f"({self.expr(e.left, scope)} {_CMPOPS[type(e.ops[0])]} {self.expr(e.comparators[0], scope)})"
        if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == "math" and e.attr == "inf":
            return "ND_INF"
        if isinstance(e, ast.Subscript):
            v = e.value
            if isinstance(v, ast.Attribute) and v.attr == "shape" and isinstance(v.value, ast.Name) \
                    and v.value.id in self.arrays and isinstance(e.slice, ast.Constant) and e.slice.value == 0:
                return f"{v.value.id}_n"
            if isinstance(v, ast.Name) and v.id in self.arrays:
                return f"{v.id}[{self.expr(e.slice, scope)}]"
            self.fail(e, "this subscript")
        if isinstance(e, ast.Call):
            f = e.func
            name = f.attr if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "math" \
                else f.id if isinstance(f, ast.Name) else None
            args = []
            for a in e.args:
                if isinstance(a, ast.Name) and a.id in self.arrays:
                    args += [a.id, f"{a.id}_n"]
                else:
                    args.append(self.expr(a, scope))
            if name in _CALLS:
                return f"{_CALLS[name]}({', '.join(args)})"
            if name is not None and isinstance(f, ast.Name):
                return f"{name}({', '.join(args)})"
            self.fail(e, "this call")
        self.fail(e, type(e).__name__)


__all__ = ["to_cxx"]
