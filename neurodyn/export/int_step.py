"""The integer step of a neuron, rendered from its one definition (``neurons/*.py``).

No neuron equation is written here.  The neuron's derived step program (the sympy
assignments of ``neurons.symbolic``) is printed in integer arithmetic:

- coefficients are of three kinds (``COEF_KINDS``): *fractions* (decays, input gains) are
  integers in units of 2**-frac_bits; *state-valued* ones (thresholds, rest and reset
  potentials) are in state units; *flags* are 0/1;
- a product with a fraction becomes ``qmul(c, x, frac_bits)``, the fixed-point multiply
  with the format's rounding; an affine expression of fractions such as ``1 - decay``
  becomes ``((1 << fbits) - decay)``;
- ``spike(u)`` is ``u >= 0`` as 0/1;
- every value the step assigns (other than a spike) is saturated to the state range and
  each clamp is counted: the step returns ``(out, *new_states, n_saturated)``.

Anything else (exp, division, a fraction outside a product) cannot be run in fixed point
and raises ConfigError naming the neuron.  The rendered text is compiled both into the
Numba simulator kernel and, with the same primitives, into the numpy reference.
"""
from __future__ import annotations

from functools import lru_cache

import sympy

from ..errors import ConfigError
from ..neurons.base import NeuronModel
from ..neurons.symbolic import spike as SpikeFn
from .int_prims import QMUL

COEF_KINDS: dict[str, str] = {
    "decay": "fraction", "gain": "fraction", "alpha_syn": "fraction",
    "v_rest": "state", "threshold": "state", "v_reset": "state",
    "reset_sub": "flag",
}
SUPPORTED_MODELS = ("lif", "cuba", "li")


def check_model(model: NeuronModel) -> None:
    """Raise ConfigError unless the model's coefficients all have a fixed-point kind."""
    unknown = [c for c in model.coefs if c not in COEF_KINDS]
    if model.name not in SUPPORTED_MODELS or unknown:
        raise ConfigError(f"neuron '{model.name}' has no fixed-point form (supported: {list(SUPPORTED_MODELS)}"
                          + (f"; coefficients without a kind: {unknown}" if unknown else "") + ")")


class _IntPrinter:
    def __init__(self, model: NeuronModel, rounding: str) -> None:
        self.model = model
        self.fractions = {c for c in model.coefs if COEF_KINDS.get(c) == "fraction"}
        self.qmul = QMUL[rounding]

    def fail(self, what: str) -> ConfigError:
        return ConfigError(f"neuron '{self.model.name}': {what} cannot be computed in fixed point")

    def is_fraction(self, e: sympy.Expr) -> bool:
        names = {str(s) for s in e.free_symbols}
        return bool(names) and names <= self.fractions

    def frac(self, e: sympy.Expr) -> str:
        """An affine expression of fractions, in units of 2**-frac_bits."""
        parts = []
        for term in sympy.Add.make_args(sympy.expand(e)):
            coeff, rest = term.as_coeff_Mul()
            if rest == 1:
                if coeff != int(coeff):
                    raise self.fail(f"the fraction constant {coeff}")
                parts.append(f"{int(coeff)} * (1 << fbits)")
            elif isinstance(rest, sympy.Symbol) and coeff == int(coeff):
                c = int(coeff)
                parts.append(str(rest) if c == 1 else f"-{rest}" if c == -1 else f"{c} * {rest}")
            else:
                raise self.fail(f"'{e}' (only affine expressions of fractions are allowed)")
        return "(" + " + ".join(parts) + ")"

    def expr(self, e: sympy.Expr) -> str:
        if isinstance(e, sympy.Symbol):
            if str(e) in self.fractions:
                raise self.fail(f"the fraction '{e}' outside a product")
            return str(e)
        if e.is_Number:
            if e != int(e):
                raise self.fail(f"the non-integer constant {e}")
            return f"({int(e)})"
        if isinstance(e, sympy.Add):
            return "(" + " + ".join(self.expr(a) for a in e.args) + ")"
        if isinstance(e, sympy.Mul):
            frac = [a for a in e.args if self.is_fraction(a)]
            rest = [a for a in e.args if not self.is_fraction(a)]
            if len(frac) > 1:
                raise self.fail(f"the product of fractions '{e}'")
            body = " * ".join(self.expr(a) for a in rest) if rest else "1"
            if frac:
                return f"{self.qmul}({self.frac(frac[0])}, ({body}), fbits)"
            return f"({body})"
        if isinstance(e, sympy.Pow) and e.exp.is_Integer and 0 < int(e.exp) <= 3 and not self.is_fraction(e.base):
            return "(" + " * ".join([self.expr(e.base)] * int(e.exp)) + ")"
        if isinstance(e, SpikeFn):
            return f"spike({self.expr(e.args[0])})"
        raise self.fail(f"'{e}'")


@lru_cache(maxsize=None)
def render_int_step(model: NeuronModel, rounding: str) -> tuple[str, str]:
    """(function name, source) of the integer step
    ``name(x, *states, *coefs, smax, fbits) -> (out, *new_states, n_saturated)``.

    smax: the state limit (saturation at ±smax); fbits: fraction bits.  Both are arguments,
    not constants, so one compiled kernel serves every format with the same rounding.
    """
    check_model(model)
    d = model.derived
    pr = _IntPrinter(model, rounding)
    name = f"{d.step_name}_int"
    lines = [f"def {name}({', '.join(d.args)}, smax, fbits):", "    nsat = 0"]

    def saturated(var: str, code: str) -> None:
        lines.append(f"    {var}_raw = {code}")
        lines.append(f"    {var} = sat({var}_raw, -smax, smax)")
        lines.append(f"    nsat = nsat + ({var} != {var}_raw) * 1")

    for var, e in d.step_program:
        if isinstance(e, SpikeFn):
            lines.append(f"    {var} = {pr.expr(e)}")
        else:
            saturated(var, pr.expr(e))
    outs = []
    for k, e in enumerate(d.step_returns):
        if isinstance(e, sympy.Symbol):
            if str(e) in pr.fractions:
                raise pr.fail(f"returning the fraction '{e}'")
            outs.append(str(e))
        else:
            saturated(f"_out{k}", pr.expr(e))
            outs.append(f"_out{k}")
    lines.append(f"    return ({', '.join(outs)}, nsat)")
    return name, "\n".join(lines) + "\n"


__all__ = ["COEF_KINDS", "SUPPORTED_MODELS", "check_model", "render_int_step"]
