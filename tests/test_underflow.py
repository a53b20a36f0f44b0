"""Numbers flushed to zero: the term (1 + gamma_k) lambda S of every tolerance."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.exact.check import SMALLEST_NORMAL, compare
from derive.exact.underflow import LAMBDA, Spread, _any_order, sensitivities, total
from derive.problem.problem import Dataset, Training, make_problem
from derive.report.build import explain, prepare, symbolic_for
from tests.emulated_tape import emulated_tape, flushing_tape


def _problem(x, y, w, b, dtype="float32"):
    dataset = Dataset("tiny", tuple(x), tuple(y), "test")
    return make_problem(dataset, dtype=dtype, init={"W": w, "b": b}, training=Training(steps=0))


# b = 2e-39 is subnormal in float32: TensorFlow reads it as 0, so every residual is 0
# and so is the tape's dL/dW, while the exact value is 2 * 100 * b.
FLUSHED = {"x": [100.0], "y": [0.0], "w": 0.0, "b": 2e-39}


def test_a_flushed_gradient_passes_only_with_the_flush_term():
    problem = _problem(**FLUSHED)
    tape = flushing_tape(problem)
    assert tape.gradients["W"] == 0.0
    report = explain(problem, tape=flushing_tape, backward=False)
    assert report.ok, [c for c in report.checks if not c.ok]
    ground = prepare(problem)
    (_, bound_w, _) = ground.bounds
    assert bound_w.sensitivity > 0 and bound_w.underflow > 0
    exact = ground.references["W"]
    assert exact == 2 * 100 * Fraction(problem.initial.values["b"])
    # Without the flush term the same tape fails: relative rounding alone cannot explain it.
    without = replace(bound_w, value=bound_w.value - bound_w.underflow)
    assert not compare("dL/dW", exact, 0.0, without, "float32").ok
    assert compare("dL/dW", exact, 0.0, bound_w, "float32").ok


def test_a_sensitivity_beyond_the_float_range_does_not_stop_the_report():
    """Huge x and a small W: S exceeds the largest float64, lambda S does not."""
    problem = _problem([3.16e154] * 200, [0.0] * 200, 1e-3, 0.0, "float64")
    report = explain(problem, tape=emulated_tape, backward=False)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert all(c.bound.underflow < c.bound.value for c in report.checks)


def test_the_flush_term_is_negligible_at_ordinary_scales():
    problem = _problem([3.3, 1.0], [1.7, 2.0], 0.5, -0.25)
    for bound in prepare(problem).bounds:
        assert 0 < bound.underflow < 1e-30 * bound.value


def tiny_or_not(dtype: str) -> st.SearchStrategy[float]:
    """Values near the dtype's smallest normal number (subnormals included), or ordinary."""
    tiny = 1e-36 if dtype == "float32" else 1e-306
    return st.one_of(st.floats(-tiny, tiny, allow_subnormal=True), st.floats(-1e3, 1e3))


@st.composite
def flushing_problems(draw: st.DrawFn) -> tuple[list[tuple[float, float]], float, float, str]:
    dtype = draw(st.sampled_from(["float32", "float64"]))
    value = tiny_or_not(dtype)
    data = draw(st.lists(st.tuples(value, value), min_size=1, max_size=6))
    return data, draw(value), draw(value), dtype


@settings(max_examples=60, deadline=None)
@given(case=flushing_problems())
def test_a_tape_that_flushes_to_zero_stays_within_its_tolerance(case):
    data, w, b, dtype = case
    problem = _problem([p[0] for p in data], [p[1] for p in data], w, b, dtype)
    report = explain(problem, tape=flushing_tape, backward=False)
    assert report.ok, [c for c in report.checks if not c.ok]


def test_the_gradient_sensitivity_follows_the_tapes_order():
    """S of dL/dW at one sample, by the rules, written out by hand."""
    symbolic = symbolic_for(_problem(**FLUSHED))
    w, b, x, y = (Fraction(v) for v in (3, 5, 7, 11))
    lam = Fraction(SMALLEST_NORMAL["float32"])
    s_wx = 1 * x + w * 1 + lam + 1  # W and x each read as 0, the product flushed
    s_r = s_wx + 1 + 1 + 1 + 1  # + b (read as 0) + 1, - y (read as 0) + 1
    a_r = w * x + b + y
    s_local = 2 * s_r + 1  # r * 2
    # The mean's 1/n (A = 1/n = 1, S = 0: a constant, never flushed), times 2 r:
    s_upstream = 0 * (2 * a_r) + 1 * s_local + lam * 0 * s_local + 1
    a_upstream = 2 * a_r
    s_term = s_upstream * x + a_upstream * 1 + lam * s_upstream * 1 + 1  # times x_i
    got = total(
        sensitivities(symbolic).of_quantity("W"), symbolic, [w, b], (7.0,), (11.0,), "float32"
    )
    assert got == s_term + 0  # n - 1 = 0 additions


def test_a_product_in_any_order_is_bounded_by_every_order():
    a, b, c = (Spread(sp.Integer(v), sp.Integer(s)) for v, s in ((3, 1), (5, 2), (7, 0)))
    free = _any_order([a, b, c]).sensitivity.subs(LAMBDA, 0)
    for order in ([a, b, c], [a, c, b], [b, c, a]):
        first, second, third = order
        fixed = ((first * second) * third).sensitivity.subs(LAMBDA, 0)
        assert free >= fixed
    with pytest.raises(NotImplementedError):
        _ = a ** sp.Rational(1, 2)
