"""A non-finite gradient whose own terms are small: the forward pass's reach decides
between an overflow on the way and a failure."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from derive.exact.check import (
    FAIL,
    OVERFLOW,
    Bound,
    Reach,
    compare,
    overflow_threshold,
    rounding_bound,
    verdict_reason,
)
from derive.exact.reach import ForwardReach
from derive.problem.problem import Training, make_problem, several_features
from derive.report.build import explain, symbolic_for
from tests.emulated_tape import emulated_trace

# Sample 1: 10 * 1e38 - 10 * 1e38 + 1e-30 is tiny exactly, but 10 * 1e38 is beyond
# float32: the tape's residual is inf - inf = NaN, and so is every gradient.
COLUMNS = ((1e38, 1.0, 2.0), (1e38, 1.0, 2.0), (1e-30, 1.0, 0.5))
Y = (1.0, 0.0, 2.0)
INIT = {"W_1": 10.0, "W_2": -10.0, "W_3": 1.0, "b": 0.0}


def _bound(value: float) -> Bound:
    """A small bound: the checked value's own terms stay far from the range."""
    return rounding_bound("float32", value * 1e6, 0.0, roundings=3)


def test_a_nan_beyond_the_reach_of_the_forward_pass_is_an_overflow_with_its_reason():
    far = Reach(magnitude=2e39, sample=1)
    check = compare(
        "dL/dW_3", Fraction(1, 6), math.nan, _bound(1e-3), "float32", forward=lambda: far
    )
    assert check.verdict == OVERFLOW
    reason = verdict_reason(check)
    assert reason is not None and reason.key == "reason.overflow_forward"
    assert dict(reason.fields)["sample"] == 1


@pytest.mark.parametrize("forward", [None, Reach(magnitude=1e30, sample=2)])
def test_a_nan_the_forward_pass_cannot_explain_stays_a_failure(forward):
    """The check can still fail: with every value on the way in range, NaN is wrong."""
    check = compare(
        "dL/dW_3",
        Fraction(1, 6),
        math.nan,
        _bound(1e-3),
        "float32",
        forward=None if forward is None else (lambda: forward),
    )
    assert check.verdict == FAIL


def test_the_reach_is_the_residual_on_absolute_values_and_bounds_it_from_above():
    problem = make_problem(
        several_features("far", COLUMNS, Y, "inline"), init=INIT, training=Training(steps=0)
    )
    symbolic = symbolic_for(problem)
    reach = ForwardReach(symbolic, problem.columns, problem.y, "float32")
    params = [Fraction(problem.initial.values[name]) for name in symbolic.parameters]
    per_sample = reach.per_sample(params)
    by_hand = [
        sum(abs(float(w)) * abs(row[j]) for j, w in enumerate(params[:3])) + abs(float(params[3]))
        + abs(y)
        for row, y in zip(zip(*problem.columns, strict=True), problem.y, strict=True)
    ]  # fmt: skip
    assert np.all(per_sample >= np.asarray(by_hand))
    assert np.all(per_sample <= np.asarray(by_hand) * (1 + 1e-5))
    assert reach.at(params).sample == 1
    assert reach.at(params).magnitude >= float(overflow_threshold("float32"))


def test_a_residual_that_overflows_on_the_way_is_an_overflow_everywhere_not_a_failure():
    problem = make_problem(
        several_features("far", COLUMNS, Y, "inline"), init=INIT, training=Training(steps=3)
    )
    with np.errstate(over="ignore", invalid="ignore"):  # the emulated float32 tape's inf
        trace = emulated_trace(problem)
    report = explain(problem, None, trace, backward=True)
    assert [c.verdict for c in report.checks] == [OVERFLOW] * 5
    small = report.checks[3]  # dL/dW_3: 1/6 exactly, its own terms far from the range
    assert abs(small.reference) < 1
    assert small.reason is not None and small.reason.key == "reason.overflow_forward"
    assert report.backward is not None and report.backward.only_overflowed


def test_float64_data_whose_exact_values_exceed_float64_give_overflows_and_valid_json():
    """Exact values beyond float64 (data near 1e200, squared) are written, not crashed on:
    the loss and dL/dW overflow in float64 as the tape's do, dL/db still passes."""
    import json
    from importlib import resources

    import jsonschema

    from derive.problem.datasets import resolve_dataset
    from derive.render.jsonfile import to_json
    from derive.render.outputs import to_html
    from tests.emulated_tape import emulated_tape

    dataset = resolve_dataset(None, [(1e200, 2e200, -1e200)], (1e200, 3e200, 0.0), None)
    problem = make_problem(
        dataset, dtype="float64", init={"W": 1.0, "b": 0.0}, training=Training(0)
    )
    with np.errstate(over="ignore", invalid="ignore"):  # the emulated tape's inf
        report = explain(problem, tape=emulated_tape)
    assert [c.verdict for c in report.checks] == [OVERFLOW, OVERFLOW, "pass"]
    assert report.checks[0].reason is not None
    assert report.checks[0].reason.key == "reason.overflow_value"
    assert dict(report.checks[0].reason.fields)["value"] == "> 1.798e+308"  # not "inf"
    schema = json.loads((resources.files("derive") / "schema" / "report.schema.json").read_text())
    document = json.loads(to_json(report))
    jsonschema.validate(document, schema)
    assert document["initial"]["mean"]["loss_term"] is None  # beyond float64: null
    assert "beyond float64" in to_html(report)  # the page renders, with the reason


def test_a_curvature_beyond_float64_suggests_no_learning_rate():
    """lambda_max beyond float64 makes 2 / lambda_max round to 0: the warning says no
    rate is stable and suggests standardizing, not "try eta = 0"."""
    from derive.problem.datasets import resolve_dataset
    from derive.render.outputs import to_html
    from derive.report.build import formulas_for, symbolic_for
    from derive.report.training import reference_trace

    dataset = resolve_dataset(None, [(1e200, 2e200, -1e200)], (1e200, 3e200, 0.0), None)
    problem = make_problem(
        dataset, dtype="float64", init={"W": 1.0, "b": 0.0}, training=Training(1, 0.01, 1)
    )
    symbolic = symbolic_for(problem)
    with np.errstate(over="ignore", invalid="ignore"):
        trace = reference_trace(problem, symbolic, formulas_for(symbolic))
        report = explain(problem, trace=trace, backward=False)
    stability = report.training.stability
    assert stability.lambda_max == float("inf") and stability.suggested_lr == 0
    page = to_html(report)
    assert (
        "beyond float64&#39;s largest number" in page or "beyond float64's largest number" in page
    )
    assert "Try <" not in page  # no suggested rate
