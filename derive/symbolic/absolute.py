"""The magnitude that bounds an expression's rounding error."""

from __future__ import annotations

import sympy as sp


def absolute_form(expr: sp.Expr) -> sp.Expr:
    """expr with every subtraction turned into addition and every constant made positive.

    Evaluated at the absolute values of the inputs, this is the magnitude that
    bounds the rounding error of computing expr in floating point (each operation
    rounds by at most a factor 1 + u; errors add up to gamma_k times this sum).
    """
    if isinstance(expr, sp.Number):
        return abs(expr)
    if isinstance(expr, sp.Add):
        return sp.Add(*[absolute_form(term) for term in expr.args])
    if isinstance(expr, sp.Mul):
        return sp.Mul(*[absolute_form(factor) for factor in expr.args])
    if isinstance(expr, sp.Pow) and expr.exp.is_integer and expr.exp > 0:
        return absolute_form(expr.base) ** expr.exp
    if isinstance(expr, (sp.Symbol, sp.Indexed)):
        return expr
    if isinstance(expr, sp.Abs):  # |fl(a)| errs by no more than fl(a) does
        return absolute_form(expr.args[0])
    if isinstance(expr, sp.Piecewise):
        # The tape may take the other branch than the exact value near the boundary:
        # the sum of both branches' magnitudes bounds whichever it takes
        return sp.Add(*[absolute_form(value) for value, _ in expr.args])
    if isinstance(expr, sp.sign):
        # |sign| <= 1, exact once the side of 0 is decided; a residual within its own
        # rounding error of 0 may be decided otherwise by the tape: see exact/kinks.py
        return sp.Integer(1)
    raise NotImplementedError(f"no rounding-error bound for {expr!r}")
