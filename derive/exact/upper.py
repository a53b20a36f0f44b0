"""Upper bounds, in float64, of a nonnegative polynomial at many points at once.

A bound's magnitude M (and its underflow sensitivity S) is a polynomial with
nonnegative coefficients evaluated at |parameters|: it only has to be an upper bound,
not exact. The training checks need it at every step; evaluated exactly, in integers,
a quadratic in eleven parameters costs more than the rest of the check. Here every
step is one row of a NumPy evaluation, and the result is rounded up by a margin that
covers every rounding made:

- each coefficient is rounded up to float64;
- a term c * p_1^e_1 * ... takes d <= degree roundings to nearest, each a relative
  error below u = 2^-53 while no intermediate leaves the normal range;
- the sum of T nonnegative terms, in any order, adds at most T - 1 such errors;
- the final scaling by the margin adds one more.

With every term nonnegative there is no cancellation, so the computed sum S' obeys
S' >= S (1 - u)^(d + T) and S <= S' (1 + 2 (d + T + 2) u), rounded up once more.
A row where an intermediate leaves the normal range (underflow towards a subnormal,
overflow to inf) has no such relative bound: it is evaluated exactly instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from ..common.numbers import round_up

if TYPE_CHECKING:
    from .sums import Evaluator

UNIT = 2.0**-53  # float64's unit roundoff
SMALLEST_SAFE = 2.0**-1000  # above the subnormal range with room for one product's error


def polynomial_above(
    polynomial: Mapping[tuple[int, ...], Fraction],
    points: np.ndarray,
    exact: Callable[[Sequence[Fraction]], Fraction],
) -> np.ndarray:
    """An upper bound of `polynomial` ({exponents: coefficient}, every coefficient
    >= 0) at each row of `points` (>= 0, float64, one column per parameter). `exact`
    evaluates it exactly at one row: used where float64 cannot bound a row."""
    points = np.asarray(points, dtype=np.float64)
    if not polynomial:
        return np.zeros(points.shape[0])
    if any(c < 0 for c in polynomial.values()):
        raise ValueError("an upper bound in float64 needs nonnegative coefficients")
    if (points < 0).any():
        raise ValueError("an upper bound in float64 needs nonnegative points")
    exponents = np.array(list(polynomial), dtype=np.int64).reshape(len(polynomial), -1)
    coefficients = np.array([round_up(c) for c in polynomial.values()])
    rows = points.shape[0]
    terms = np.broadcast_to(coefficients, (rows, coefficients.size)).copy()
    unsafe = np.zeros(rows, dtype=bool)
    if (
        not np.isfinite(coefficients).all()
        or ((coefficients > 0) & (coefficients < SMALLEST_SAFE)).any()
    ):
        unsafe[:] = True
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for column in range(exponents.shape[1]):
            factor = points[:, column : column + 1]
            for power in range(1, int(exponents[:, column].max(initial=0)) + 1):
                applies = exponents[:, column] >= power
                product = terms * factor
                # a product of nonzero factors that fell below the normal range, or
                # rose past it, lost its relative error bound
                lost = (
                    (terms != 0)
                    & (factor != 0)
                    & ((product < SMALLEST_SAFE) | ~np.isfinite(product))
                )
                unsafe |= (lost & applies).any(axis=1)
                terms = np.where(applies, product, terms)
        degree = int(exponents.sum(axis=1).max(initial=0))
        margin = 1.0 + 2.0 * (degree + coefficients.size + 2) * UNIT
        total = terms.sum(axis=1) * margin
    above = np.nextafter(total, np.inf)
    unsafe |= ~np.isfinite(above)
    for row in np.flatnonzero(unsafe):
        above[row] = round_up(exact([Fraction(float(v)) for v in points[row]]))
    return above


def magnitudes_above(evaluator: Evaluator, points: np.ndarray) -> np.ndarray | None:
    """Upper bounds of an evaluator's magnitude at each row of |parameters|; None when
    its magnitude is not a polynomial (then only the exact route applies)."""
    polynomial = evaluator.magnitude_polynomial
    # a term below zero (none of the bounds' forms has one) leaves the exact route only
    if polynomial is None or any(c < 0 for c in polynomial.values()):
        return None
    return polynomial_above(polynomial, np.abs(points), polynomial.at)


def at_step(bounds: np.ndarray | None, step: int, exactly: Callable[[], Fraction]) -> Fraction:
    """One step's upper bound as a Fraction; the exact value (`exactly()`) where there is
    none, it is not finite, or the step was not bounded (the first non-finite step)."""
    if bounds is None or step >= bounds.size or not math.isfinite(bounds[step]):
        return exactly()
    return Fraction(float(bounds[step]))
