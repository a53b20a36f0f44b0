"""The exact data sums behind the training checks: the fast route equals rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.exact.expansion import Expansion, exact_sum, products_are_exact
from derive.exact.sums import FAST_SUM_SAMPLES, DataSums, data_sums, exact_total
from derive.models.registry import get_loss, get_model
from derive.symbolic.derivation import X_I, build_symbolic


def rational_sum(x: np.ndarray, y: np.ndarray, a: int, b: int) -> Fraction:
    return sum(
        (Fraction(p) ** a * Fraction(q) ** b for p, q in zip(x.tolist(), y.tolist(), strict=True)),
        Fraction(0),
    )


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=40))
def test_exact_sum_is_the_rational_sum(values):
    """Any finite float64 values, however far apart in size, sum exactly."""
    array = np.array(values)
    assert exact_sum(Expansion.of(array), array.size) == sum(map(Fraction, values), Fraction(0))


def test_exact_sum_of_an_expansion_counts_every_part():
    x = np.array([1e16, 3.0, -7.5])
    product = Expansion.of(x) * Expansion.of(x + 1)  # parts: products and their errors
    assert len(product.parts) > 1
    expected = sum((Fraction(v) * Fraction(v + 1) for v in x.tolist()), Fraction(0))
    assert exact_sum(product, x.size) == expected


def test_many_samples_take_the_fast_route_and_agree_with_rationals():
    rng = np.random.default_rng(3)
    n = FAST_SUM_SAMPLES + 501
    x = rng.normal(0, 5, n).astype(np.float32).astype(np.float64)
    y = (0.5 * x + rng.normal(0, 1, n)).astype(np.float32).astype(np.float64)
    sums = DataSums(tuple(x), tuple(y))
    for a, b in [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]:
        assert sums.total(a, b) == rational_sum(x, y, a, b)
        assert sums.total(a, b, absolute=True) == rational_sum(np.abs(x), np.abs(y), a, b)


def test_values_whose_products_would_overflow_take_the_rational_route():
    x = np.full(FAST_SUM_SAMPLES + 1, 1e200)
    x[0] = 3e-300  # and one whose square would underflow
    y = np.ones_like(x)
    assert products_are_exact(x, 1)
    assert not products_are_exact(x, 2)
    assert not products_are_exact(np.array([3e-300, 1.0]), 2)
    assert products_are_exact(np.array([3e-30, 1e30]), 2)
    assert DataSums(x, y).total(2, 0) == rational_sum(x, y, 2, 0)


def test_one_data_sums_per_data_set():
    x, y = (1.0, 2.0, 3.0), (2.0, 4.0, 7.0)
    assert data_sums(x, y) is data_sums(x, y)
    assert data_sums(x, y).total(1, 1) == Fraction(31)
    # The same data as arrays (as the references hold them) share the sums ...
    assert data_sums(np.array(x), np.array(y)) is data_sums(x, y)
    # ... and other data do not.
    assert data_sums(x, (2.0, 4.0, 8.0)) is not data_sums(x, y)
    assert data_sums(x, (2.0, 4.0, 8.0)).total(1, 1) == Fraction(34)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=1, max_size=30),
    st.floats(-100, 100),
    st.floats(-100, 100),
)
def test_a_polynomial_summand_sums_exactly_from_the_data_sums(points, w, b):
    symbolic = build_symbolic(get_model("linear"), get_loss("mse"))
    x = tuple(float(np.float32(p[0])) for p in points)
    y = tuple(float(np.float32(p[1])) for p in points)
    summand = symbolic.loss.summand  # (W x_i + b - y_i)^2
    parameters = [Fraction(w), Fraction(b)]
    w_, b_ = parameters
    residuals = (w_ * Fraction(p) + b_ - Fraction(q) for p, q in zip(x, y, strict=True))
    expected = sum((r**2 for r in residuals), Fraction(0))
    assert exact_total(symbolic, summand, parameters, data_sums(x, y)) == expected
    # Not a polynomial in the data: no sums form.
    assert exact_total(symbolic, 1 / (1 + X_I**2), parameters, data_sums(x, y)) is None


def test_exact_sum_in_chunks_is_the_same_sum(monkeypatch):
    """Beyond 2^26 values the sum is taken in chunks; small chunks show the seams hold."""
    rng = np.random.default_rng(8)
    values = rng.normal(0, 1e3, 1001) * 2.0 ** rng.integers(-60, 60, 1001)
    whole = exact_sum(Expansion.of(values), values.size)
    monkeypatch.setattr("derive.exact.expansion._BINCOUNT_CHUNK", 7)
    assert exact_sum(Expansion.of(values), values.size) == whole
    assert whole == sum(map(Fraction, values.tolist()), Fraction(0))


def test_float32_data_and_float64_data_give_the_same_exact_sums():
    """float32 values take the plain-product route; the same values with one float64
    among them take the expansion route; both equal the rational sums."""
    rng = np.random.default_rng(5)
    n = FAST_SUM_SAMPLES + 10
    x = rng.normal(0, 3, n).astype(np.float32).astype(np.float64)
    y = rng.normal(1, 3, n).astype(np.float32).astype(np.float64)
    wide = x.copy()
    wide[7] = 0.1  # not a float32
    for data in (x, wide):
        sums = DataSums(data, y)
        for a, b in [(2, 0), (1, 1), (0, 2), (1, 0)]:
            assert sums.total(a, b) == rational_sum(data, y, a, b)
            assert sums.total(a, b, absolute=True) == rational_sum(np.abs(data), np.abs(y), a, b)


def test_exact_sum_with_parts_common_to_every_sample():
    x = np.array([0.1, -2.5, 3.0])
    value = Expansion.of(x) * Expansion.of(x) + Expansion.of(0.3) * Expansion.of(0.7)
    assert any(np.ndim(part) == 0 for part in value.parts)
    exact_terms = [Fraction(v) ** 2 + Fraction(0.3) * Fraction(0.7) for v in x.tolist()]
    assert exact_sum(value, x.size) == sum(exact_terms, Fraction(0))
    assert exact_sum(Expansion.of(0.5), 4) == 2
