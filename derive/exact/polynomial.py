"""A polynomial in the parameters with exact rational coefficients, evaluated exactly."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from fractions import Fraction

Exponents = tuple[int, ...]  # one exponent per parameter, or per data column


class Polynomial(dict[Exponents, Fraction]):
    """{exponents of the parameters: exact coefficient}, evaluated in integers.

    The training checks evaluate each polynomial at every step: with many features a
    quadratic has dozens of terms, and a Fraction operation per term (each with its gcd)
    costs more than the rest of the check. Here the coefficients share one denominator,
    the parameters another (float values: powers of two), and the sum of the terms is
    formed in Python integers, divided once: the same exact value.
    """

    @functools.cached_property
    def _integers(self) -> tuple[int, int, list[tuple[Exponents, int, int]]]:
        """(common denominator Q, highest degree, [(exponents, numerator, degree)])."""
        common = math.lcm(*(c.denominator for c in self.values())) if self else 1
        degree = max((sum(e) for e in self), default=0)
        terms = [(e, c.numerator * (common // c.denominator), sum(e)) for e, c in self.items()]
        return common, degree, terms

    def at(self, parameters: Sequence[Fraction]) -> Fraction:
        common, degree, terms = self._integers
        scale = math.lcm(*(p.denominator for p in parameters)) if parameters else 1
        scaled = [p.numerator * (scale // p.denominator) for p in parameters]
        # sum over terms of c * prod(P_i^e_i) * scale^(degree - deg): one denominator
        powers = [scale**d for d in range(degree + 1)]
        total = 0
        for exponents, numerator, deg in terms:
            term = numerator * powers[degree - deg]
            for value, exponent in zip(scaled, exponents, strict=True):
                if exponent == 1:
                    term *= value
                elif exponent:
                    term *= value**exponent
            total += term
        return Fraction(total, common * powers[degree])
