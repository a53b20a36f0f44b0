"""From three features on, the report works W_1 and b in full and gives the other
weights' results, each still derived, proved and checked."""

from __future__ import annotations

import re

import pytest

from derive.render.environment import _formula
from derive.render.outputs import to_html
from derive.report.build import explain
from derive.report.condensed import worked_in_full
from tests.emulated_tape import emulated_trace
from tests.test_features import problem_for


@pytest.mark.parametrize(
    ("parameters", "full"),
    [
        (("W", "b"), {"W", "b"}),
        (("W_1", "W_2", "b"), {"W_1", "W_2", "b"}),
        (("W_1", "W_2", "W_3", "b"), {"W_1", "b"}),
    ],
)
def test_up_to_two_features_everything_is_worked_in_full(parameters, full):
    assert worked_in_full(parameters) == full


def test_five_features_show_w1_and_b_in_full_and_every_result_checked():
    problem = problem_for(5, "mse", steps=2)
    report = explain(problem, None, emulated_trace(problem), backward=True)
    full = {d.parameter for d in report.derivations if d.in_full}
    assert full == {"W_1", "b"}
    condensed = [d for d in report.derivations if not d.in_full]
    assert [d.parameter for d in condensed] == ["W_2", "W_3", "W_4", "W_5"]
    assert all(d.verified and d.steps for d in condensed)  # derived step by step all the same
    assert {s.quantity for s in report.substitutions if not s.in_full} == {
        f"dL/dW_{j}" for j in range(2, 6)
    }
    html = to_html(report)
    # Two step-by-step derivations (W_1, b), one block for the rest
    assert len(re.findall(r"<h3>With respect to (?:W₁|b)</h3>", html)) == 2
    assert "<h3>With respect to W₂ … W₅</h3>" in html
    assert "W₂ … W₅ move by the same rule" in html
    assert report.ok


def test_two_features_keep_every_derivation_in_full():
    problem = problem_for(2, "mae", steps=0)
    report = explain(problem, None, emulated_trace(problem), backward=False)
    assert all(d.in_full for d in report.derivations)
    assert all(s.in_full for s in report.substitutions)
    assert "… " not in "".join(re.findall(r"<h3>[^<]*</h3>", to_html(report)))


def test_a_two_digit_parameter_index_is_one_subscript():
    assert _formula(r"\partial W_10", None, False) == _formula(r"\partial W_{10}", None, False)
    assert _formula(r"\partial W_10", None, False) != _formula(r"\partial W_{1}0", None, False)


@pytest.mark.render
def test_a_ten_feature_report_stays_within_the_page():
    """The widest report: ten features, training and the backward pass, every table
    (forward values, parameters, Hessian) split or shortened to fit."""
    from derive.problem.problem import Training, make_problem
    from derive.render.pdf import layout
    from tests.test_features import data

    init = {**{f"W_{j}": 0.1 * (-1) ** j for j in range(1, 11)}, "b": 0.5}
    problem = make_problem(data(10, 12), init=init, training=Training(4, 0.01, 1))
    report = explain(problem, None, emulated_trace(problem), backward=True)
    document = layout(to_html(report))
    for page in document.pages:
        right_edge = page.width - page._page_box.margin_right
        for box in _descendants(page._page_box):
            element = getattr(box, "element", None)
            assert box.position_x + box.margin_width() <= right_edge + 0.5, (
                element.tag if element is not None else box,
                element.get("class") if element is not None else "",
            )


def _descendants(box):
    for child in getattr(box, "children", ()):
        yield child
        yield from _descendants(child)


def test_equal_counts_of_neighbouring_quantities_are_named_once():
    from derive.render.environment import per_quantity

    counts = {"L": 26, **{f"W_{j}": 10014 for j in range(1, 11)}, "b": 14}
    assert per_quantity(counts) == "26 (L), 10014 (dL/dW₁ … dL/dW₁₀), 14 (dL/db)"
    assert per_quantity({"L": 7, "W": 8, "b": 8}) == "7 (L), 8 (dL/dW, dL/db)"
    assert per_quantity({"L": 7, "W": 9, "b": 8}) == "7 (L), 9 (dL/dW), 8 (dL/db)"
