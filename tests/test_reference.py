"""The fast reference for large data agrees with exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.exact import reference
from derive.exact.expansion import Expansion, total
from derive.exact.reference import Samples

float32s = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=32)


def _exact(symbolic, formula, parameters, samples) -> Fraction:
    exact_samples = Samples.of(samples.x, samples.y)
    object.__setattr__(exact_samples, "exact", True)  # force the rational path
    return reference.value(symbolic, formula, parameters, exact_samples)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.tuples(float32s, float32s), min_size=1, max_size=50),
    w=float32s,
    b=float32s,
)
def test_fast_path_is_within_2_to_the_minus_52(symbolic, data, w, b):
    samples = Samples.of([p[0] for p in data], [p[1] for p in data])
    object.__setattr__(samples, "exact", False)  # force the error-free float64 path
    parameters = {"W": Fraction(w), "b": Fraction(b)}
    formulas = [symbolic.loss] + [d.result for d in symbolic.derivations.values()]
    for formula in formulas:
        fast = reference.value(symbolic, formula, parameters, samples)
        exact = _exact(symbolic, formula, parameters, samples)
        magnitude = reference.magnitude(symbolic, formula, parameters, samples)
        # Correctly rounded sum of exactly held terms, then one scaling by 1/n or 2/n.
        assert abs(fast - exact) <= Fraction(1, 2**51) * max(abs(exact), Fraction(1, 2**1000))
        # The float64 magnitude is an upper bound of the exact one.
        exact_magnitude = _magnitude_exact(symbolic, formula, parameters, samples)
        assert magnitude >= exact_magnitude


def _magnitude_exact(symbolic, formula, parameters, samples):
    exact_samples = Samples.of(samples.x, samples.y)
    object.__setattr__(exact_samples, "exact", True)
    return reference.magnitude(symbolic, formula, parameters, exact_samples)


def test_two_product_is_exact():
    rng = np.random.default_rng(0)
    a = rng.normal(size=1000) * 1e3
    b = rng.normal(size=1000)
    product = Expansion.of(a) * Expansion.of(b)
    for k in range(0, 1000, 97):
        held = sum((Fraction(float(part[k])) for part in product.parts), Fraction(0))
        assert held == Fraction(float(a[k])) * Fraction(float(b[k]))


def test_total_is_correctly_rounded():
    values = Expansion.of(np.array([1e16, 1.0, -1e16, 1.0]))
    assert total(values, 4) == 2.0


def test_large_data_uses_the_fast_path():
    assert Samples.of(range(reference.EXACT_LIMIT), range(reference.EXACT_LIMIT)).exact
    big = reference.EXACT_LIMIT + 1
    assert not Samples.of(range(big), range(big)).exact
    # Values whose products could overflow float64 stay on the exact path.
    assert Samples.of([1e300] * big, [1.0] * big).exact


def test_pairs_and_their_quotients_are_within_the_stated_error():
    from derive.exact.expansion import divided, double_double

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=300) * 1e3, rng.normal(size=300)
    w, b = 0.3, -1.7
    held = (Expansion.of(w) * Expansion.of(x) + Expansion.of(b) - Expansion.of(y)) * Expansion.of(x)
    high, low = double_double(held)
    quotient_high, quotient_low = divided(high, low, 999_999)
    for k in range(0, 300, 13):
        exact = (Fraction(w) * Fraction(x[k]) + Fraction(b) - Fraction(y[k])) * Fraction(x[k])
        magnitude = sum(abs(Fraction(float(part[k]))) for part in held.parts)
        assert abs(Fraction(high[k]) + Fraction(low[k]) - exact) <= magnitude / 2**96
        quotient = Fraction(quotient_high[k]) + Fraction(quotient_low[k])
        assert abs(quotient - exact / 999_999) <= magnitude / 999_999 / 2**94
    # A value the same for every sample stays one pair.
    assert double_double(Expansion.of(1.0))[0].shape == ()
