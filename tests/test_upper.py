"""Float64 upper bounds of nonnegative polynomials (derive.exact.upper): never below the
exact value, barely above it, and exact where float64 cannot bound a row."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from derive.common.numbers import round_up
from derive.exact.polynomial import Polynomial
from derive.exact.upper import polynomial_above


def _random_polynomial(rng: random.Random, parameters: int, terms: int) -> Polynomial:
    polynomial = Polynomial()
    for _ in range(terms):
        exponents = tuple(rng.choice((0, 0, 1, 2)) for _ in range(parameters))
        polynomial[exponents] = Fraction(rng.randrange(0, 10**12), rng.randrange(1, 10**9))
    return polynomial


def test_never_below_and_barely_above_the_exact_value() -> None:
    rng = random.Random(7)
    for _ in range(40):
        polynomial = _random_polynomial(rng, parameters=rng.randrange(1, 12), terms=30)
        width = len(next(iter(polynomial)))
        points = np.abs(np.array([[rng.uniform(-3, 3) for _ in range(width)] for _ in range(5)]))
        above = polynomial_above(polynomial, points, polynomial.at)
        for row, bound in zip(points, above, strict=True):
            exact = polynomial.at([Fraction(float(v)) for v in row])
            assert Fraction(float(bound)) >= exact
            assert float(bound) <= float(exact) * (1 + 1e-12) + 1e-300


def test_round_up_rounds_up() -> None:
    third = Fraction(1, 3)
    assert Fraction(round_up(third)) >= third
    assert round_up(third) <= float(np.nextafter(float(third), np.inf))
    assert round_up(Fraction(1, 2)) == 0.5  # representable: unchanged
    assert round_up(Fraction(10**400)) == float("inf")


def test_rows_float64_cannot_bound_are_exact() -> None:
    # c * p^2 with p = 1e-200 underflows in float64; p = 1e200 overflows
    polynomial = Polynomial({(2,): Fraction(3), (0,): Fraction(0)})
    points = np.array([[1e-200], [1e200], [2.0]])
    calls: list[list[Fraction]] = []

    def exact(row: list[Fraction]) -> Fraction:
        calls.append(row)
        return polynomial.at(row)

    above = polynomial_above(polynomial, points, exact)
    assert len(calls) == 2  # only the two rows out of range
    assert Fraction(float(above[0])) >= 3 * Fraction(1e-200) ** 2
    assert above[0] > 0  # not flushed to zero
    assert above[1] == float("inf")  # beyond float64: the caller evaluates exactly
    assert Fraction(float(above[2])) >= 12


def test_a_negative_coefficient_is_refused() -> None:
    with pytest.raises(ValueError, match="nonnegative"):
        polynomial_above(Polynomial({(1,): Fraction(-1)}), np.array([[1.0]]), lambda r: 0)


def test_a_magnitude_with_a_negative_term_takes_the_exact_route() -> None:
    from types import SimpleNamespace

    from derive.exact.upper import magnitudes_above

    polynomial = Polynomial({(1,): Fraction(-1), (0,): Fraction(3)})
    evaluator = SimpleNamespace(magnitude_polynomial=polynomial)
    assert magnitudes_above(evaluator, np.array([[1.0]])) is None  # type: ignore[arg-type]
    positive = SimpleNamespace(magnitude_polynomial=Polynomial({(1,): Fraction(2)}))
    assert magnitudes_above(positive, np.array([[-1.5]]))[0] >= 3.0  # type: ignore[arg-type,index]
