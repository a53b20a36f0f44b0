"""The Huber loss, tf.keras.losses.Huber(delta): one registry entry per delta.

The exact references equal the textbook formulas worked here in Fractions (not derive's);
the tape, emulated op by op as Keras runs them in float32 (and the real one behind the
`tensorflow` marker), agrees within its bound, also where the tape's rounded residual
falls in the other branch than the exact one; every offered wrong derivative is flagged;
the derivation's steps are proved by SymPy and a wrong step is not; reports render in
English and Korean and their JSON follows the schema; bad input is one line, exit 2.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from importlib import resources

import jsonschema
import numpy as np
import pytest
import sympy as sp

from derive.models.registry import get_loss
from derive.problem.problem import BUILTIN_DATASETS, Dataset, Training, make_problem
from derive.report.build import explain, prepare
from derive.symbolic.derivation import X_I, I, N, build_symbolic, verify_equal
from tests.emulated_tape import emulated_tape, emulated_trace

INIT = {"W": 0.2, "b": 0.7}
STEPS = 5
f32 = np.float32


def _f32(value: float) -> Fraction:
    return Fraction(float(f32(value)))


def by_hand(xs, ys, w: float, b: float, delta: float) -> dict[str, Fraction]:
    """L, dL/dW, dL/db at the float32 values: h(r) = r^2/2 inside |r| <= delta, else
    delta |r| - delta^2/2; h'(r) = r inside, delta sign(r) outside."""
    x = [_f32(v) for v in xs]
    y = [_f32(v) for v in ys]
    d = _f32(delta)
    r = [_f32(w) * xi + _f32(b) - yi for xi, yi in zip(x, y, strict=True)]
    n = len(r)

    def h(u: Fraction) -> Fraction:
        return u * u / 2 if abs(u) <= d else d * abs(u) - d * d / 2

    def slope(u: Fraction) -> Fraction:
        return u if abs(u) <= d else d * ((u > 0) - (u < 0))

    return {
        "L": sum(map(h, r), Fraction(0)) / n,
        "W": sum((slope(ri) * xi for ri, xi in zip(r, x, strict=True)), Fraction(0)) / n,
        "b": sum(map(slope, r), Fraction(0)) / n,
    }


def problem_for(data: Dataset | str = "tf-examples", init=INIT, steps=STEPS, delta=1.0):
    dataset = BUILTIN_DATASETS[data] if isinstance(data, str) else data
    return make_problem(
        dataset, init=init, loss="huber", huber_delta=delta, training=Training(steps, 0.01, 1)
    )


def branches(problem) -> set[bool]:
    """Which branches the samples fall in at the initial values (True: |r| <= delta)."""
    hand = [
        abs(_f32(problem.initial.values["W"]) * Fraction(x) + _f32(problem.initial.values["b"])
            - Fraction(y)) <= _f32(problem.huber_delta)
        for x, y in zip(problem.x, problem.y, strict=True)
    ]  # fmt: skip
    return set(hand)


# --- The references and the derivation -----------------------------------------------------


@pytest.mark.parametrize("delta", [1.0, 0.5, 0.3])
@pytest.mark.parametrize("data", ["seed", "single", "tf-examples"])
def test_the_references_equal_an_exact_computation_by_hand(data, delta):
    dataset = BUILTIN_DATASETS[data]
    ground = prepare(problem_for(data, delta=delta))
    assert ground.references == by_hand(dataset.x, dataset.y, INIT["W"], INIT["b"], delta)


def test_the_test_data_have_samples_in_both_branches():
    """Otherwise the tests below would not exercise the linear branch."""
    assert branches(problem_for()) == {True, False}
    assert branches(problem_for(delta=0.3)) == {True, False}


def test_the_delta_is_the_one_the_tape_holds():
    """Keras casts delta to the dtype: 0.3 in float32 is not 0.3."""
    problem = problem_for(delta=0.3)
    assert problem.huber_delta == float(f32(0.3)) != 0.3
    assert problem.loss_entry.constant_values["delta"] == _f32(0.3)
    assert problem.loss_entry is problem_for(delta=0.3).loss_entry  # one entry per delta


def test_each_step_is_proved_and_a_wrong_step_is_not():
    symbolic = build_symbolic(problem_for().model_entry, get_loss("huber"))
    for derivation in symbolic.derivations.values():
        assert derivation.verified
    target = sp.diff(sp.Sum(symbolic.loss.summand, (I, 1, N)) / N, symbolic.parameters["W"])
    right = symbolic.derivations["W"].result.expression
    assert verify_equal(right, target)
    residual = symbolic.residual
    # The classic slip: the outer branch's delta sign(r) without the inner derivative x_i
    wrong = (
        sp.Sum(
            sp.Piecewise((residual * X_I, abs(residual) <= 1), (sp.sign(residual), True)), (I, 1, N)
        )
        / N
    )
    assert not verify_equal(wrong, target)
    # and the sign of the outer branch flipped
    assert not verify_equal(right.replace(sp.sign, lambda u: -sp.sign(u)), target)


def test_the_written_out_derivative_is_proved_term_by_term():
    problem = problem_for(delta=0.5)
    report = explain(problem, None, emulated_trace(problem), backward=False)
    for derivation in report.derivations:
        assert derivation.verified and derivation.written_out_verified
    assert r"\begin{cases}" in report.derivations[0].result
    assert report.problem.derivation_note == "explain.huber_branches"


# --- The tape within its bound, and wrong derivatives caught -------------------------------


@pytest.mark.parametrize("delta", [1.0, 0.3])
def test_the_emulated_tape_agrees_within_its_bound(delta):
    problem = problem_for(delta=delta)
    report = explain(problem, None, emulated_trace(problem), backward=True)
    assert [c.verdict for c in report.checks] == ["pass"] * 3
    assert report.backward is not None and report.backward.ok, report.backward.failures
    assert report.backward.ops_match
    assert report.training is not None and report.training.ok
    assert report.training.steps_checked == STEPS
    assert report.ok


def test_a_tape_off_by_a_few_units_in_the_last_place_fails():
    """The bound is tight enough to catch a gradient that is wrong by a little."""
    problem = problem_for(steps=0)
    trace = emulated_trace(problem)
    wrong = dict(trace.gradients)
    wrong["W"] = trace.gradients["W"] * f32(1 + 2.0**-12)
    report = explain(problem, None, dataclasses.replace(trace, gradients=wrong))
    assert [c.verdict for c in report.checks] == ["pass", "fail", "pass"]


@pytest.mark.parametrize("wrong", get_loss("huber").wrong_derivatives)
def test_each_offered_wrong_derivative_is_flagged(wrong):
    problem = problem_for()
    report = explain(problem, wrong, emulated_trace(problem), backward=True)
    assert not report.ok
    assert any(check.verdict == "fail" for check in report.checks[1:])


def test_r_for_sign_is_the_clip_forgotten():
    """delta sign(r) taken as delta r: half the squared error's gradient on the samples
    beyond delta, the right one inside."""
    dataset = BUILTIN_DATASETS["tf-examples"]
    problem = problem_for()
    wrong = prepare(problem, "r-for-sign").references
    x = [_f32(v) for v in dataset.x]
    y = [_f32(v) for v in dataset.y]
    r = [_f32(INIT["W"]) * xi + _f32(INIT["b"]) - yi for xi, yi in zip(x, y, strict=True)]
    assert wrong["b"] == sum(r, Fraction(0)) / len(r)
    assert prepare(problem, "flip-sign").references["W"] == -prepare(problem).references["W"]


def test_a_wrong_derivative_that_changes_nothing_here_is_refused():
    """With every residual inside delta, r for delta sign(r) is no mistake at all: its
    demonstration could not fail, so it is refused rather than shown passing."""
    from derive.common.errors import InputError

    problem = problem_for("seed", init={"W": 0.5, "b": 1.0})
    assert branches(problem) == {True}
    with pytest.raises(InputError, match="changes no value"):
        prepare(problem, "r-for-sign")


# --- The branch boundary: the tape may round a residual across |r| = delta -----------------

# x = 3, W = float32(1/3) = 0.3333333432...: W x = 1.0000000298 exactly, but the tape's
# product rounds to 1.0. With b = y = 0 the exact residual lies beyond delta = 1 (linear
# branch), the tape's on it (quadratic branch).
ACROSS = Dataset(name="across", x=(3.0, 1.0), y=(0.0, 0.0), source="tests")
ACROSS_INIT = {"W": 1 / 3, "b": 0.0}


def test_the_across_sample_is_as_described():
    w = _f32(1 / 3)
    assert w * 3 > 1
    assert f32(w) * f32(3) == f32(1)


def test_a_residual_rounded_across_delta_still_passes():
    """h' is continuous: the other branch changes the term by no more than the
    residual's own rounding error, which the bound holds."""
    problem = problem_for(ACROSS, ACROSS_INIT, steps=2)
    report = explain(problem, None, emulated_trace(problem), backward=True)
    assert report.ok, [c.verdict for c in report.checks]
    assert [c.verdict for c in report.checks] == ["pass"] * 3
    assert report.backward is not None and report.backward.ok


# --- Stability, JSON and the reports -------------------------------------------------------


def _json(report) -> dict:
    from derive.render.jsonfile import to_json

    schema = json.loads((resources.files("derive") / "schema" / "report.schema.json").read_text())
    document = json.loads(to_json(report))
    jsonschema.validate(document, schema)
    return document


def test_the_stable_rate_comes_from_half_the_squared_error():
    """Huber curves at most as 1/2 r^2 does: its safe rate is twice the squared error's."""
    problem = problem_for()
    report = explain(problem, None, emulated_trace(problem), backward=False)
    assert report.training.curvature == "bounded"
    mse = make_problem(
        BUILTIN_DATASETS["tf-examples"], init=INIT, training=Training(STEPS, 0.01, 1)
    )
    mse_report = explain(mse, None, emulated_trace(problem), backward=False)
    stable = report.training.stability.stable_lr
    assert stable == pytest.approx(2 * mse_report.training.stability.stable_lr, rel=1e-12)
    document = _json(report)
    assert document["training"]["curvature"] == "bounded"
    assert document["training"]["stable_lr"] == pytest.approx(stable)
    assert document["problem"]["loss_name"] == "huber"
    assert document["problem"]["huber_delta"] == 1.0
    assert document["problem"]["parameters"] == ["W", "b"]


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", ["Huber function", "tf.keras.losses.Huber(0.5)", "SelectV2", "LessEqual"]),
        ("ko", ["Huber 함수", "tf.keras.losses.Huber(0.5)", "갈래", "SelectV2"]),
    ],
)
def test_the_huber_report_renders(lang, words):
    from derive.common.i18n import translator
    from derive.render.outputs import to_html

    problem = problem_for(delta=0.5)
    report = explain(problem, None, emulated_trace(problem), backward=True)
    html = to_html(report, lang)
    assert translator(lang).text("loss.huber") in html
    for word in words:
        assert word in html, word
    assert "--huber-delta 0.5" in report.problem.reproduce


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--loss", "mse", "--huber-delta", "2"], "--huber-delta needs --loss huber"),
        (["--loss", "huber", "--huber-delta", "-1"], "--huber-delta must be a positive number"),
        (["--loss", "huber", "--huber-delta", "1e-50"], "--huber-delta is 0 in float32"),
        (["--loss", "huber", "--huber-delta", "inf"], "--huber-delta must be a positive number"),
        (["--loss", "huber", "--dtype", "float64"], "--loss huber computes in float32"),
    ],
)
def test_bad_huber_input_is_one_line_and_exit_2(arguments, message, tmp_path, capsys):
    from derive.cli.main import main

    assert main(["report", *arguments, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not list(tmp_path.iterdir())


def as_fraction(value: float) -> Fraction:
    return Fraction(repr(float(value)))


def test_huber_handouts_are_checked_against_the_tape_and_fit_a_page():
    """Each sheet's hand work follows the branch of its printed residual: h(r) and
    h'(r) x, h'(r) by hand here; the keys agree with the tape; one page a sheet."""
    from derive.handouts.files import document_html
    from derive.handouts.sheets import build_handouts
    from derive.render.pdf import to_pdf_pages

    handouts = build_handouts(6, class_seed=11, tape=emulated_tape, loss="huber")
    assert handouts.ok
    seen = set()
    for sheet in handouts.sheets:
        assert sheet.problem.loss == "huber" and sheet.problem.huber_delta == 1.0
        assert all(k.ok for k in sheet.checks)
        w, b = (as_fraction(sheet.init_given[name]) for name in ("W", "b"))
        for work in sheet.hand.samples:
            r = w * as_fraction(work.x[0]) + b - as_fraction(work.y)
            inside = abs(r) <= 1
            seen.add(inside)
            slope = r if inside else Fraction((r > 0) - (r < 0))
            assert work.square == (r * r / 2 if inside else abs(r) - Fraction(1, 2))
            assert work.shares == {"W": slope * as_fraction(work.x[0]), "b": slope}
    assert seen == {True, False}  # both branches occur on these sheets
    html = document_html(handouts, True)
    assert "h<sub>δ</sub>" in html and "|r<sub>i</sub>| ≤ δ" in html
    for filled in (True, False):
        _, pages = to_pdf_pages(document_html(handouts, filled))
        assert len(pages) == len(handouts.sheets)


# --- The real tape -------------------------------------------------------------------------


@pytest.mark.tensorflow
@pytest.mark.parametrize("delta", [1.0, 0.3])
def test_the_real_tape_agrees_within_its_bound(delta):
    from derive.tape.training import train

    problem = problem_for(delta=delta)
    report = explain(problem, None, train(problem), backward=True)
    assert [c.verdict for c in report.checks] == ["pass"] * 3
    assert report.backward is not None and report.backward.ok and report.backward.ops_match
    assert report.training is not None and report.training.ok
    assert report.ok


@pytest.mark.tensorflow
def test_the_real_tape_is_keras_huber_and_takes_the_branch_of_its_rounded_residual():
    from derive.tape.gradient import gradient_at

    problem = problem_for(ACROSS, ACROSS_INIT, steps=0)
    tape = gradient_at(problem)
    # The tape's residual is exactly 1.0 = delta: quadratic branch, slope r = 1 for
    # sample 1; sample 2 has r = 1/3 inside. dL/db = (1 + 1/3) / 2 in float32.
    assert tape.gradients["b"] == pytest.approx(float((1 + _f32(1 / 3)) / 2), rel=1e-6)
    exact = by_hand(ACROSS.x, ACROSS.y, ACROSS_INIT["W"], 0.0, 1.0)
    assert abs(Fraction(tape.gradients["W"]) - exact["W"]) < Fraction(1, 10**6)


# --- Found by trying to break the bound: what a correct tape does at the range's edges ---


@pytest.mark.tensorflow
@pytest.mark.parametrize(
    ("arguments", "code", "verdicts"),
    [
        # delta |r| overflows on the way, though L itself fits: overflow, not fail
        (
            ["--huber-delta", "1e19", "--init", "W=0,b=3.5e19"],
            1,
            {"overflow", "pass", "inconclusive"},
        ),
        # |r| ~ 2e38: the branch not taken gives 0 * inf = NaN in Square's gradient
        (["--huber-delta", "1", "--init", "W=0,b=2e38"], 1, {"overflow", "inconclusive"}),
        # fl(1/n) delta is flushed to zero at |r|'s node: allowed for, not failed
        (["--huber-delta", "2e-38", "--init", "W=0,b=1"], 0, {"inconclusive", "pass"}),
    ],
)
def test_the_range_edges_are_overflow_or_allowed_never_fail(arguments, code, verdicts, tmp_path):
    from derive.cli.main import main

    command = ["report", "--loss", "huber", "--x", "1", "--y", "0", "--steps", "0"]
    assert main([*command, *arguments, "--format", "json", "--out", str(tmp_path)]) == code
    (written,) = tmp_path.glob("*.json")
    document = json.loads(written.read_text())
    initial = document["initial"]
    checks = [initial["loss"], *initial["gradients"].values()]
    assert {c["verdict"] for c in checks} <= verdicts
    assert document["verdict"] != "fail"
    assert '"verdict": "fail"' not in json.dumps(document["backward"])


def test_a_delta_whose_square_overflows_is_refused(tmp_path, capsys):
    from derive.cli.main import main

    assert main(["report", "--loss", "huber", "--huber-delta", "2e19", "--out", str(tmp_path)]) == 2
    assert "delta squared overflows float32" in capsys.readouterr().err
