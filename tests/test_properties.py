"""Property-based: on random problems the tape is within its bound, and wrong
derivatives that differ from the truth by more than the bounds are always flagged."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from derive.common.errors import InputError
from derive.problem.problem import Dataset, Training, make_problem
from derive.report.build import explain
from derive.symbolic.derivation import WRONG_DERIVATIVES

pytestmark = pytest.mark.tensorflow

values = st.floats(
    min_value=-100, max_value=100, allow_nan=False, allow_infinity=False, allow_subnormal=True
)
problems = st.fixed_dictionaries(
    {
        "data": st.lists(st.tuples(values, values), min_size=1, max_size=30),
        "W": values,
        "b": values,
        "dtype": st.sampled_from(["float32", "float64"]),
    }
)

SETTINGS = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def _problem(case):
    dataset = Dataset(
        "random", tuple(p[0] for p in case["data"]), tuple(p[1] for p in case["data"]), "test"
    )
    # The initial check and the backward pass; training has tests of its own.
    return make_problem(
        dataset,
        dtype=case["dtype"],
        init={"W": case["W"], "b": case["b"]},
        training=Training(steps=0),
    )


@SETTINGS
@given(case=problems)
# A loss that underflows: r^2 is below float32's smallest normal number.
@example(case={"data": [(0.0, 1.1754943508222875e-38)], "W": 0.0, "b": 0.0, "dtype": "float32"})
# A subnormal residual: TensorFlow flushes the subnormal gradient to zero.
@example(case={"data": [(2.0, 1.401298464324817e-45)], "W": 0.0, "b": 0.0, "dtype": "float32"})
# A subnormal parameter: TensorFlow reads b as 0, so the adjoint of W is 0, while the
# exact value is 2 * 15 * b; and the same flush multiplied by x = 100.
@example(case={"data": [(15.0, 0.0)], "W": 0.0, "b": 1.984351063524427e-39, "dtype": "float32"})
@example(case={"data": [(100.0, 0.0)], "W": 0.0, "b": 2e-39, "dtype": "float32"})
def test_the_tape_is_within_its_bound(case):
    report = explain(_problem(case))
    assert report.ok, [c for c in report.checks if not c.ok]


@SETTINGS
@given(case=problems, kind=st.sampled_from(sorted(WRONG_DERIVATIVES)))
# A subnormal sample, whose ULP is the smallest subnormal number.
@example(
    case={"data": [(5e-324, 0.0)], "W": 0.0, "b": 1.0, "dtype": "float64"}, kind="drop-factor-2"
)
def test_wrong_derivatives_are_flagged_when_they_differ(case, kind):
    problem = _problem(case)
    right = explain(problem)
    try:
        wrong = explain(problem, wrong_derivative=kind)
    except InputError as refused:
        # A mistake that changes no value here is refused (its check could not fail)
        assert "changes no value" in str(refused)
        assume(False)
    # Where the wrong value is further from the truth than both bounds together, the
    # tape (within its bound of the truth) cannot be within the wrong value's bound.
    differing = [
        bad
        for good, bad in zip(right.checks[1:], wrong.checks[1:], strict=True)
        if abs(bad.reference - good.reference) > good.tolerance + bad.tolerance
    ]
    assume(differing)  # e.g. dropping 1/n changes nothing when n = 1
    assert not wrong.ok
    assert all(not check.ok for check in differing)
