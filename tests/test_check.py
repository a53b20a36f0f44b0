"""The checker: exact differences, ULPs, the rounding bound, and wrong derivatives flagged."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from derive.common.errors import InputError
from derive.exact.check import compare, rounding_bound, ulp
from derive.exact.float_bounds import bound_at, gamma_bounds
from derive.problem.problem import BUILTIN_DATASETS, make_problem
from derive.report.build import explain
from derive.symbolic.derivation import WRONG_DERIVATIVES
from tests.conftest import init_for
from tests.emulated_tape import emulated_tape


def test_ulp_matches_numpy_spacing():
    for value in (1.0, 1.3886, 0.0442, 3.3e5, 7e-8):
        assert ulp(value, "float32") == float(np.spacing(np.float32(value)))
        assert ulp(value, "float64") == float(np.spacing(np.float64(value)))


def test_bound_is_gamma_k_times_magnitude_plus_the_flushes():
    bound = rounding_bound("float32", Fraction(10), Fraction(0), roundings=9)
    k = bound.roundings
    assert k == 9
    u = Fraction(1, 2**24)
    gamma = k * u / (1 - k * u)
    assert bound.value == pytest.approx(float(gamma * 10), rel=1e-12)
    flushing = rounding_bound("float32", Fraction(10), Fraction(1000), roundings=9)
    assert flushing.underflow == pytest.approx(float((1 + gamma) * 1000 * 2.0**-126), rel=1e-12)
    assert flushing.value == pytest.approx(float(gamma * 10) + flushing.underflow, rel=1e-12)


def test_compare_counts_ulps_exactly():
    reference = Fraction(1)
    tape = float(np.nextafter(np.float32(1), np.float32(2)))  # one float32 ULP above 1
    check = compare(
        "x",
        reference,
        tape,
        rounding_bound("float32", Fraction(1), Fraction(0), roundings=8),
        "float32",
    )
    assert check.ulps == pytest.approx(1.0)
    assert check.ok


def test_compare_flags_a_difference_beyond_the_bound():
    bound = rounding_bound("float32", Fraction(1), Fraction(0), roundings=8)
    check = compare("x", Fraction(1), 1.0 + 10 * bound.value, bound, "float32")
    assert not check.ok


@pytest.mark.parametrize("data", sorted(BUILTIN_DATASETS))
def test_float32_computation_passes(data):
    problem = make_problem(BUILTIN_DATASETS[data], init=init_for(BUILTIN_DATASETS[data]))
    report = explain(problem, tape=emulated_tape, backward=False)
    assert report.ok, [c for c in report.checks if not c.ok]
    # Agreement is far tighter than the bound in practice.
    assert all(check.ulps < 64 for check in report.checks)


@pytest.mark.parametrize("data", sorted(BUILTIN_DATASETS))
@pytest.mark.parametrize("kind", sorted(WRONG_DERIVATIVES))
def test_wrong_derivatives_are_flagged(data, kind):
    problem = make_problem(BUILTIN_DATASETS[data], init=init_for(BUILTIN_DATASETS[data]))
    if kind == "drop-mean" and problem.n == 1:
        # With one sample 1/n = 1: the mistake changes nothing, and a demonstration that
        # cannot fail is refused rather than shown passing
        with pytest.raises(InputError, match="changes no value"):
            explain(problem, wrong_derivative=kind, tape=emulated_tape, backward=False)
        return
    report = explain(problem, wrong_derivative=kind, tape=emulated_tape, backward=False)
    loss, *gradients = report.checks
    assert loss.ok  # the loss itself is not affected
    assert not report.ok
    assert any(not c.ok for c in gradients)


def test_no_bound_never_passes():
    # At k = 2^24 roundings k u >= 1 in float32: gamma_k has no value, so no bound exists.
    unbounded = rounding_bound("float32", Fraction(1), Fraction(0), roundings=2**24)
    assert unbounded.value == float("inf")
    for tape in (1.0, 1.5, 1e30):  # even the exact value: nothing has been verified
        assert not compare("x", Fraction(1), tape, unbounded, "float32").ok
    # The same from the per-sample path (a tolerance from gamma_bounds).
    tolerance = float(gamma_bounds(2**24, "float32", np.ones(1), np.zeros(1), Fraction(0))[0])
    shown = bound_at(2**24, "float32", 1.0, 0.0, tolerance)
    assert not compare("x", Fraction(1), 1.0, shown, "float32").ok
    # The largest k with a bound still passes the exact value.
    bounded = rounding_bound("float32", Fraction(1), Fraction(0), roundings=2**24 - 1)
    assert bounded.roundings == 2**24 - 1
    assert compare("x", Fraction(1), 1.0, bounded, "float32").ok


def test_a_bound_beyond_the_float_range_still_passes():
    # gamma_k exists, M overflows float64: the tolerance shows as inf and holds.
    with np.errstate(over="ignore"):
        tolerances = gamma_bounds(2, "float32", np.array([1e308]), np.zeros(1), Fraction(2))
    tolerance = float(tolerances[0])
    bound = bound_at(2, "float32", 1e308, 0.0, tolerance)
    assert bound.value == float("inf") and bound.gamma < 1
    assert compare("x", Fraction(1), 2.0, bound, "float32").ok
