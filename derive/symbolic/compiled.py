"""SymPy formulas compiled to plain Python arithmetic that stays exact: on Fractions
(exact), floats, NumPy arrays and error-free expansions (derive.exact.expansion) alike.

lambdify alone would print sign as math.copysign, a Piecewise as Python's "if" (which
arrays refuse) and 1/2 as a float (which turns a Fraction computation into a float one).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import sympy as sp
from sympy.printing.lambdarepr import LambdaPrinter


@functools.lru_cache(maxsize=512)
def compiled(arguments: tuple[sp.Symbol, ...], expr: sp.Expr) -> Callable[..., object]:
    """expr as a function of `arguments`, compiled once per expression (the training
    checks ask for the same formulas at every step)."""
    plain = expr.replace(sp.sign, _SIGN)
    plain = plain.replace(lambda e: isinstance(e, sp.Piecewise), _as_where)
    namespace = {_SIGN.__name__: _sign, _WHERE.__name__: _where, "exact_rational": _Rational}
    printer = ExactPrinter(
        {"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True}
    )
    return sp.lambdify(list(arguments), plain, modules=[namespace], printer=printer)


_SIGN = sp.Function("exact_sign")  # lambdify prints sign as math.copysign, a float
_WHERE = sp.Function("exact_where")  # and a Piecewise as Python's "if", which arrays refuse


def _as_where(piecewise: sp.Piecewise) -> sp.Expr:
    """Piecewise((a, lhs <= rhs), (b, True)) -> exact_where(rhs - lhs, a, b)."""
    (chosen, condition), (other, otherwise) = piecewise.args
    if not isinstance(condition, sp.LessThan) or otherwise is not sp.true:
        raise NotImplementedError(f"no evaluation for {piecewise!r}")
    return _WHERE(condition.rhs - condition.lhs, chosen, other)


def _where(margin, chosen, other):  # type: ignore[no-untyped-def]
    """`chosen` where margin >= 0, else `other`, element by element. On error-free
    expansions the side is decided exactly (Expansion.sign) and the choice is a product
    with 0 or 1, exact too."""
    if hasattr(margin, "parts"):  # an Expansion (not imported: symbolic comes first)
        expansion = type(margin)
        inside = (margin.sign().parts[0] >= 0).astype(np.float64)
        chosen, other = expansion.of(0.0) + chosen, expansion.of(0.0) + other
        return expansion(
            tuple(part * inside for part in chosen.parts)
            + tuple(part * (1 - inside) for part in other.parts)
        )
    if isinstance(margin, np.ndarray):
        return np.where(margin >= 0, chosen, other)
    return chosen if margin >= 0 else other


class _Rational(Fraction):
    """A formula's rational constant (Huber's 1/2, delta^2 / 2): exact with Fractions, and
    its float with arrays and expansions (exact: the constants of a loss entry have a
    power of two below, and few digits above)."""

    __array_ufunc__ = None  # an array on the left defers to the methods below

    def _float_with(self, other: object) -> bool:
        return not isinstance(other, (int, Fraction))

    def __add__(self, other):  # type: ignore[no-untyped-def, override]
        return float(self) + other if self._float_with(other) else Fraction(self) + other

    def __radd__(self, other):  # type: ignore[no-untyped-def, override]
        return other + float(self) if self._float_with(other) else other + Fraction(self)

    def __sub__(self, other):  # type: ignore[no-untyped-def, override]
        return float(self) - other if self._float_with(other) else Fraction(self) - other

    def __rsub__(self, other):  # type: ignore[no-untyped-def, override]
        return other - float(self) if self._float_with(other) else other - Fraction(self)

    def __mul__(self, other):  # type: ignore[no-untyped-def, override]
        return float(self) * other if self._float_with(other) else Fraction(self) * other

    def __rmul__(self, other):  # type: ignore[no-untyped-def, override]
        return other * float(self) if self._float_with(other) else other * Fraction(self)

    def __neg__(self):  # type: ignore[no-untyped-def, override]
        return _Rational(-Fraction(self))


class ExactPrinter(LambdaPrinter):
    """Rationals as exact constants (Python's 1/2 is a float, and a float makes a Fraction
    computation a float one)."""

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"exact_rational({expr.p}, {expr.q})"

    def _print_Half(self, expr: sp.Rational) -> str:
        return self._print_Rational(expr)


def _sign(value):  # type: ignore[no-untyped-def]
    """-1, 0 or 1 as an int (exact with Fractions), elementwise for arrays."""
    if hasattr(value, "sign"):  # an error-free expansion (derive.exact.expansion): exact
        return value.sign()
    return np.sign(value) if isinstance(value, np.ndarray) else (value > 0) - (value < 0)
