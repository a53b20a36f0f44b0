"""The four verdicts (pass, fail, inconclusive, overflow), the share of the bound used,
the resolution, and what the command line and the JSON say about them."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import derive.cli.lines as terminal
from derive.exact.check import (
    compare,
    largest_finite,
    overflow_threshold,
    rounding_bound,
)
from derive.problem.problem import BUILTIN_DATASETS, Training, make_problem
from derive.report.build import explain, formulas_for, symbolic_for
from derive.report.training import reference_trace
from tests.emulated_tape import emulated_tape

# The least-squares optimum of the seed data (the line through both points), and data
# whose exact dL/dW (3.92e38) is beyond float32 while the exact L (1.96e38) fits.
OPTIMUM = {"W": -0.13043478, "b": 2.1304348}
OVERFLOW_DATA = {"x": [1.4e19, 1.4e19], "y": [0.0, 0.0]}
OVERFLOW_INIT = {"W": 1.0, "b": 0.0}


def _bound(magnitude: float = 1.0):  # type: ignore[no-untyped-def]
    return rounding_bound("float32", Fraction(magnitude), Fraction(0), roundings=8)


def test_pass_within_the_bound_and_a_factor_two_would_fail():
    bound = _bound()
    check = compare("x", Fraction(1), 1.0, bound, "float32")
    assert check.verdict == "pass" and check.ok
    assert check.used == 0.0
    assert check.resolution == pytest.approx(bound.value)
    assert check.condition == 1.0
    # A value off by a factor 2 fails against the same bound.
    assert compare("x", Fraction(1), 0.5, bound, "float32").verdict == "fail"


def test_fail_beyond_the_bound():
    bound = _bound()
    check = compare("x", Fraction(1), 1.0 + 10 * bound.value, bound, "float32")
    assert check.verdict == "fail" and not check.ok
    assert check.used > 1


def test_used_is_exactly_one_at_the_bound():
    bound = _bound()
    reference = Fraction(1) - Fraction(bound.value)  # the tape's 1.0 is the bound away
    at = compare("x", reference, 1.0, bound, "float32")
    assert at.used == 1.0 and at.verdict == "pass"
    beyond = compare("x", reference - Fraction(1, 2**80), 1.0, bound, "float32")
    assert beyond.used > 1.0 and beyond.verdict == "fail"


def test_the_error_in_units_of_u_m():
    bound = _bound(magnitude=4.0)
    u = Fraction(1, 2**24)
    check = compare("x", Fraction(1), float(1 + 2 * u * 4), bound, "float32")
    assert check.error_um == pytest.approx(2.0)
    assert check.condition == 4.0


def test_inconclusive_when_the_bound_is_half_the_value():
    bound = _bound()
    tolerance = Fraction(bound.value)
    at_half = compare("x", 2 * tolerance, float(2 * tolerance), bound, "float32")
    assert at_half.resolution == 0.5
    assert at_half.verdict == "inconclusive" and at_half.ok
    assert "factor of 2" in str(at_half.reason)
    above = compare("x", 3 * tolerance, float(3 * tolerance), bound, "float32")
    assert above.verdict == "pass"
    zero = compare("x", Fraction(0), 0.0, bound, "float32")
    assert zero.verdict == "inconclusive" and math.isinf(zero.resolution)


def test_at_the_optimum_a_dropped_factor_two_is_inconclusive_not_passed():
    problem = make_problem(BUILTIN_DATASETS["seed"], init=OPTIMUM)
    for wrong in (None, "drop-factor-2"):
        report = explain(problem, wrong, tape=emulated_tape, backward=False)
        gradients = report.checks[1:]
        assert report.ok  # nothing was found wrong: exit code 0
        assert all(check.verdict == "inconclusive" for check in gradients)
        assert all(check.resolution >= 0.5 for check in gradients)
        assert report.verdict == "inconclusive"
        line = terminal.summary_line(report)
        assert "all checks passed" not in line
        assert line.startswith("no check failed; 3 values are inconclusive: L, dL/dW, dL/db")


def test_the_overflow_threshold_is_where_float32_rounds_to_infinity():
    threshold = overflow_threshold("float32")
    assert threshold == (2 - Fraction(1, 2**24)) * 2**127
    assert largest_finite("float32") == Fraction(float(np.finfo(np.float32).max))
    with np.errstate(over="ignore"):
        assert np.isinf(np.float32(float(threshold)))
        below = math.nextafter(float(threshold), 0)
        assert np.float32(below) == np.finfo(np.float32).max
    assert overflow_threshold("float64") == (2 - Fraction(1, 2**53)) * 2**1023


def test_overflow_of_the_value_and_of_the_sum_before_the_division():
    bound = rounding_bound("float32", Fraction(4 * 10**38), Fraction(0), roundings=9)
    value = compare("dL/dW", Fraction(392 * 10**36), math.inf, bound, "float32")
    assert value.verdict == "overflow" and not value.ok
    assert "largest finite number" in str(value.reason)
    mean = Fraction(196 * 10**36)  # fits in float32, but the sum of two such terms does not
    small = rounding_bound("float32", mean, Fraction(0), roundings=9)
    assert compare("L", mean, math.inf, small, "float32", summed=2).verdict == "overflow"
    assert "before the division" in str(compare("L", mean, math.inf, small, "float32", 2).reason)
    # Without the sum (or with an inf where nothing may overflow) it is a failure.
    assert compare("L", mean, math.inf, small, "float32").verdict == "fail"
    assert compare("x", Fraction(1), math.inf, _bound(), "float32").verdict == "fail"
    # An infinity of the wrong sign is no rounding of the exact value.
    assert compare("dL/dW", Fraction(392 * 10**36), -math.inf, bound, "float32").verdict == "fail"


def test_overflow_on_the_emulated_tape_is_its_own_verdict():
    problem = make_problem(
        _dataset(OVERFLOW_DATA), init=OVERFLOW_INIT, training=Training(0, 0.01, 50)
    )
    with np.errstate(over="ignore"):  # NumPy warns where TensorFlow just gives inf
        report = explain(problem, tape=emulated_tape, backward=False)
    verdicts = {check.quantity: check.verdict for check in report.checks}
    assert verdicts == {"L": "overflow", "dL/dW": "overflow", "dL/db": "pass"}
    assert not report.ok and report.verdict == "overflow"
    assert terminal.summary_line(report).startswith("OVERFLOW: 2 values left float32's range")
    document = report.to_dict()
    assert document["verdict"] == "overflow"
    assert document["initial"]["loss"]["verdict"] == "overflow"
    assert document["initial"]["loss"]["used"] is None


def _dataset(values):  # type: ignore[no-untyped-def]
    from derive.problem.datasets import resolve_dataset

    return resolve_dataset(None, values["x"], values["y"])


def test_training_keeps_the_largest_share_of_a_bound_used():
    problem = make_problem(
        BUILTIN_DATASETS["seed"], init={"W": 0.2, "b": 0.7}, training=Training(40, 0.01, 10)
    )
    symbolic = symbolic_for(problem)
    trace = reference_trace(problem, symbolic, formulas_for(symbolic))
    report = explain(problem, trace=trace, backward=False)
    training = report.training
    assert training is not None and training.most_used is not None
    assert 0 < training.max_used <= 1
    assert training.most_used.check.used == training.max_used
    assert training.rows[-1].worst_used == training.max_used
    document = report.to_dict()["training"]
    assert document["max_used"] == training.max_used
    assert document["max_used_step"] == training.most_used.step
    assert document["max_used_quantity"] == training.most_used.check.quantity
    # A gradient moved beyond its bound at one step becomes the largest share used.
    gradients = dict(trace.gradients)
    gradients["W"] = trace.gradients["W"].copy()
    gradients["W"][17] *= 1.001
    from dataclasses import replace

    broken = explain(problem, trace=replace(trace, gradients=gradients), backward=False)
    assert broken.training is not None and broken.training.max_used > 1
    assert broken.training.most_used is not None
    assert (broken.training.most_used.step, broken.training.most_used.check.quantity) == (
        17,
        "dL/dW",
    )


def test_terminal_lines_give_one_unit_a_line():
    problem = make_problem(BUILTIN_DATASETS["single"], init={"W": 0.21318328, "b": 0.78609025})
    report = explain(problem, tape=emulated_tape, backward=False)
    check = report.checks[1]
    lines = terminal.check_lines(check, "exact")
    assert len(lines) == 3
    assert lines[0].split()[:2] == ["dL/dW", "exact:"] and "tape:" in lines[0]
    assert "difference" in lines[1] and "tolerance" in lines[1]
    assert "of its bound" in lines[1] and lines[1].rstrip().endswith("pass")
    assert "u*M" in lines[2] and "ULP" in lines[2] and "condition M/|value|" in lines[2]
    # The numbers of every quantity start in the same column.
    firsts = [terminal.check_lines(c, "exact")[0] for c in report.checks]
    assert len({line.index("tape:") for line in firsts}) == 1
    assert terminal.summary_line(report) == "all checks passed"


def test_an_inconclusive_line_says_why():
    problem = make_problem(BUILTIN_DATASETS["seed"], init=OPTIMUM)
    report = explain(problem, tape=emulated_tape, backward=False)
    lines = terminal.check_lines(report.checks[1], "exact")
    assert "INCONCLUSIVE" in lines[1]
    assert lines[-1].strip().startswith("inconclusive: its bound")


def _run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "derive", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.tensorflow
def test_cli_at_the_optimum_exits_0_without_saying_all_checks_passed(tmp_path):
    result = _run(
        "report", "--data", "seed", "--init", "W=-0.13043478,b=2.1304348", "--steps", "0",
        "--no-backward", "--wrong-derivative", "drop-factor-2", "--format", "json",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "all checks passed" not in result.stdout
    assert "inconclusive" in result.stdout
    document = json.loads((tmp_path / "seed.json").read_text())
    assert document["ok"] and document["verdict"] == "inconclusive"


@pytest.mark.tensorflow
def test_cli_overflow_says_overflow_and_exits_1(tmp_path):
    result = _run(
        "report", "--x", "1.4e19,1.4e19", "--y", "0,0", "--init", "W=1,b=0", "--steps", "0",
        "--no-backward", "--format", "json", "--out", str(tmp_path), "--name", "big",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "OVERFLOW" in result.stdout
    assert "SOME CHECKS FAILED" not in result.stdout
    document = json.loads((tmp_path / "big.json").read_text())
    assert document["verdict"] == "overflow"
    assert document["initial"]["loss"]["verdict"] == "overflow"
    assert document["initial"]["gradients"]["W"]["verdict"] == "overflow"


def test_worst_verdict_orders_pass_inconclusive_overflow_fail():
    from derive.exact.check import worst_verdict

    assert worst_verdict([]) == "pass"
    assert worst_verdict(["pass", "inconclusive", "pass"]) == "inconclusive"
    assert worst_verdict(["inconclusive", "overflow"]) == "overflow"
    assert worst_verdict(["overflow", "fail", "inconclusive"]) == "fail"


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_training_badges_and_result_border_show_the_worst_verdict_of_their_span(lang):
    """Standardized tf-examples: the gradients become inconclusive near step 565 (the
    optimum), so the rows before pass and the rows from 600 on are inconclusive; the
    result box is bordered as inconclusive, not green."""
    from derive.common.i18n import translator
    from derive.render.outputs import to_html

    problem = make_problem(
        BUILTIN_DATASETS["tf-examples"],
        init={"W": 0.41702199, "b": 0.72032452},
        training=Training(700, 0.01, 50),
        standardize=True,
    )
    symbolic = symbolic_for(problem)
    report = explain(
        problem,
        None,
        reference_trace(problem, symbolic, formulas_for(symbolic, None)),
        backward=False,
    )
    tr = report.training
    first = tr.first_inconclusive.step
    assert tr.ok and tr.verdict == "inconclusive" and 550 < first < 600
    for previous, row in zip([None, *tr.rows], tr.rows, strict=False):
        start = 0 if previous is None else previous.step + 1
        expected = "inconclusive" if start <= first <= row.step or row.step > first else "pass"
        assert row.verdict == expected, row.step
    assert [row.verdict for row in tr.rows].count("pass") == 12
    html = to_html(report, lang)
    t = translator(lang)
    table = html[html.index('<table class="data training-table">') :]
    table = table[: table.index("</table>")]
    badges = re.findall(r'<span class="badge (\w+)">([^<]*)</span>', table)
    assert badges == [(row.verdict, t.text(f"verdict.{row.verdict}")) for row in tr.rows]
    result = html[html.index('<div class="summary', html.index('<section class="training">')) :]
    assert result.startswith('<div class="summary inconclusive">')
    # the terminal names the one place without repeating the count
    line = terminal.summary_line(report)
    assert line.startswith(
        f"no check failed; {tr.inconclusive_checks} values are inconclusive: all in training ("
    )


def test_the_draft_replay_of_an_overflowing_tape_warns_nothing():
    """The stand-in replay overflows as the tape does; NumPy's RuntimeWarning must not
    reach stderr (warnings are errors in the tests)."""
    from derive.problem.problem import Dataset
    from derive.report.backward import stand_in_backward

    dataset = Dataset("overflow", tuple(OVERFLOW_DATA["x"]), tuple(OVERFLOW_DATA["y"]), "test")
    problem = make_problem(dataset, init=OVERFLOW_INIT)
    replay = stand_in_backward(problem, symbolic_for(problem))
    assert not all(np.isfinite(v).all() for v in replay.values.values())
