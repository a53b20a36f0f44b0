"""References for formulas beyond rational arithmetic, enclosed with a certified error.

The linear models' references are exact rationals. exp and log of a rational are not
rational (logistic regression's sigmoid and cross-entropy use both), so such a formula
is evaluated in ball arithmetic: python-flint's ``arb`` returns, for every operation,
a midpoint and a radius whose ball holds the exact result for certain, rounding and
the truncation of each series included. The final ball of a sum over the samples
holds the exact sum; its radius is the reference's own error, stated, not estimated.
At 256 bits a sum of 10^6 terms stays within about 10^-70 of the exact value,
relative (when the sum does not cancel to nearly nothing).

The data and the parameters are the tape's floats, held exactly; a rational constant
of the formula enters as the ball of p / q.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp
from flint import arb, ctx, fmpz

from ..symbolic.compiled import ExactPrinter
from ..symbolic.derivation import Formula, N, Symbolic
from ..symbolic.logistic import Sigmoid
from ..symbolic.symbols import Y_I, YS, plain_features

PRECISION_BITS = 256


@dataclass(frozen=True)
class Enclosure:
    """The exact value lies within midpoint +- radius."""

    midpoint: Fraction
    radius: Fraction

    def contains(self, value: Fraction) -> bool:
        return abs(value - self.midpoint) <= self.radius

    @property
    def relative_radius(self) -> float:
        """radius / |midpoint|: how far the reference may be from the exact value."""
        if self.midpoint == 0:
            return 0.0 if self.radius == 0 else float("inf")
        return float(self.radius / abs(self.midpoint))


def _exact(value: arb) -> Fraction:
    """An exact arb point (a midpoint, a radius) as a Fraction."""
    mantissa, exponent = value.man_exp()
    return Fraction(int(mantissa)) * Fraction(2) ** int(exponent)


def _ball(value: Fraction | float | int) -> arb:
    """A number as a ball: exact for a float or any dyadic rational."""
    value = Fraction(value)
    return arb(fmpz(value.numerator)) / value.denominator


def _rational(p: int, q: int) -> arb:
    return arb(fmpz(p)) / q


def _log1p(value: arb) -> arb:
    return value.log1p()


def _sign(value: arb) -> arb:
    return value.sgn()


def _max(*values: arb) -> arb:
    result = values[0]
    for value in values[1:]:
        result = result.max(value)
    return result


def _sigmoid(value: arb) -> arb:
    return 1 / (1 + (-value).exp())


_NAMESPACE = {
    "Sigmoid": _sigmoid,
    "exp": arb.exp,
    "log": arb.log,
    "log1p": _log1p,
    "exact_rational": _rational,
    "exact_sign": _sign,
    "Max": _max,
    "abs": abs,
}


def needs_balls(expr: sp.Expr) -> bool:
    """Whether expr leaves rational arithmetic: exp, log or sigma of anything."""
    return expr.has(sp.exp, sp.log, Sigmoid)


@functools.lru_cache(maxsize=128)
def _ball_function(arguments: tuple[sp.Symbol, ...], expr: sp.Expr):  # type: ignore[no-untyped-def]
    """expr as a function of `arguments` on balls (exp and log included)."""
    plain = expr.replace(sp.sign, sp.Function("exact_sign"))
    printer = ExactPrinter(
        {"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True}
    )
    return sp.lambdify(list(arguments), plain, modules=[_NAMESPACE], printer=printer)


def _ball_summand(symbolic: Symbolic, expr: sp.Expr):  # type: ignore[no-untyped-def]
    plain_x = plain_features(symbolic.model.features)
    plain = expr.xreplace({**dict(zip(symbolic.features, plain_x, strict=True)), Y_I: YS})
    return _ball_function((*symbolic.parameters.values(), *plain_x, YS), plain)


def _enclosure(value: arb) -> Enclosure:
    return Enclosure(_exact(value.mid()), _exact(value.rad()))


def enclose_samples(
    symbolic: Symbolic,
    expr: sp.Expr,
    parameters: Sequence[Fraction | float],
    columns: Sequence[np.ndarray],
    y: np.ndarray,
    indices: Sequence[int],
    precision_bits: int = PRECISION_BITS,
) -> list[Enclosure]:
    """expr at the chosen samples (0-based), each enclosed: the per-sample values a
    report shows."""
    function = _ball_summand(symbolic, expr)
    previous = ctx.prec
    ctx.prec = precision_bits
    try:
        theta = [_ball(p) for p in parameters]
        return [
            _enclosure(function(*theta, *(arb(float(c[i])) for c in columns), arb(float(y[i]))))
            for i in indices
        ]
    finally:
        ctx.prec = previous


def enclose_total(
    symbolic: Symbolic,
    formula: Formula,
    parameters: Sequence[Fraction | float],
    columns: Sequence[np.ndarray],
    y: np.ndarray,
    precision_bits: int = PRECISION_BITS,
) -> Enclosure:
    """coefficient(n) * sum over the samples of the formula's summand, at these
    parameter values (in the order of symbolic.parameters), enclosed."""
    function = _ball_summand(symbolic, formula.summand)
    coefficient = sp.Rational(formula.coefficient.subs(N, len(y)))
    previous = ctx.prec
    ctx.prec = precision_bits
    try:
        theta = [_ball(p) for p in parameters]
        total = arb(0)
        for i in range(len(y)):
            total += function(*theta, *(arb(float(c[i])) for c in columns), arb(float(y[i])))
        total *= _rational(int(coefficient.p), int(coefficient.q))
        return _enclosure(total)
    finally:
        ctx.prec = previous
