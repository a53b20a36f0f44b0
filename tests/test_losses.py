"""The losses: the mean squared error and the mean absolute error, each one registry entry.

For each loss: the exact references equal a computation written here in Fractions (not
derive's), the tape agrees within its bound (a float32 emulation of the loss's own ops
here, the real tape behind the `tensorflow` marker), and a classic wrong derivative is
flagged. A residual within its rounding error of |r|'s kink makes the gradients'
checks inconclusive (never a false pass or fail), and the tape does take the other
side there. Reports render in English and Korean, and the JSON follows the schema.
"""

from __future__ import annotations

import json
from fractions import Fraction
from importlib import resources

import jsonschema
import numpy as np
import pytest

from derive.models.registry import get_loss
from derive.problem.problem import BUILTIN_DATASETS, Dataset, Training, make_problem
from derive.report.build import explain, prepare
from derive.tape.backward import BackwardTrace
from derive.tape.gradient import TapeResult
from derive.tape.training import Trace

INIT = {"W": 0.2, "b": 0.7}
STEPS = 5


def _f32(value: float) -> Fraction:
    return Fraction(float(np.float32(value)))


def _sign(value: Fraction) -> int:
    return (value > 0) - (value < 0)


def by_hand(loss: str, xs, ys, w: float, b: float) -> dict[str, Fraction]:
    """L, dL/dW, dL/db at the float32 values, from the textbook formulas."""
    x = [_f32(v) for v in xs]
    y = [_f32(v) for v in ys]
    w32, b32 = _f32(w), _f32(b)
    r = [w32 * xi + b32 - yi for xi, yi in zip(x, y, strict=True)]
    n = len(r)
    if loss == "mse":
        return {
            "L": sum(ri * ri for ri in r) / n,
            "W": sum(2 * ri * xi for ri, xi in zip(r, x, strict=True)) / n,
            "b": sum(2 * ri for ri in r) / n,
        }
    return {
        "L": sum(abs(ri) for ri in r) / n,
        "W": sum(_sign(ri) * xi for ri, xi in zip(r, x, strict=True)) / n,
        "b": Fraction(sum(_sign(ri) for ri in r), n),
    }


def problem_for(loss: str, data: Dataset | str = "tf-examples", init=INIT, steps=STEPS):
    dataset = BUILTIN_DATASETS[data] if isinstance(data, str) else data
    return make_problem(dataset, init=init, loss=loss, training=Training(steps, 0.01, 1))


# --- A float32 emulation of the tape, op by op as TensorFlow runs them -------------------


def _step(problem, w, b) -> BackwardTrace:
    """Forward: Mul, AddV2, Sub, then Square or Abs, then Mean. Backward as TensorFlow's
    gradient functions: Mean gives 1/n; Square 2 r times that; Abs sign(r) times that
    (sign(0) = 0); Sub and AddV2 pass it on; the scalars sum over the samples."""
    f = np.float32
    x, y = np.asarray(problem.x, dtype=f), np.asarray(problem.y, dtype=f)
    wx = w * x
    prediction = wx + b
    residual = prediction - y
    mae = problem.loss == "mae"
    term = np.abs(residual) if mae else np.square(residual)
    loss = np.mean(term, dtype=f)
    d_term = np.full(x.shape, f(1) / f(problem.n), dtype=f)
    d_residual = d_term * (np.sign(residual) if mae else f(2) * residual)
    name, op = ("abs", "Abs") if mae else ("square", "Square")
    return BackwardTrace(
        values={
            "W": np.atleast_1d(w),
            "b": np.atleast_1d(b),
            "x": x,
            "y": y,
            "Wx": wx,
            "prediction": prediction,
            "residual": residual,
            name: term,
            "loss": np.atleast_1d(loss),
        },
        adjoints={
            "W": np.atleast_1d(np.sum(d_residual * x, dtype=f)),
            "b": np.atleast_1d(np.sum(d_residual, dtype=f)),
            "x": None,
            "y": None,
            "Wx": d_residual,
            "prediction": d_residual,
            "residual": d_residual,
            name: d_term,
            "loss": np.atleast_1d(f(1)),
        },
        recorded_ops=("Mul", "AddV2", "Sub", op, "Mean"),
    )


def emulated_trace(problem) -> Trace:
    f = np.float32
    eta = f(problem.training.learning_rate)
    w, b = f(problem.initial.values["W"]), f(problem.initial.values["b"])
    rows, first = [], None
    for _ in range(problem.training.steps + 1):
        step = _step(problem, w, b)
        first = first or step
        g_w, g_b = step.adjoints["W"][0], step.adjoints["b"][0]
        rows.append((step.values["loss"][0], g_w, g_b, w, b))
        w, b = w - eta * g_w, b - eta * g_b
    table = np.array(rows, dtype=f)
    return Trace(
        parameters={"W": table[:, 3], "b": table[:, 4]},
        loss=table[:, 0],
        gradients={"W": table[:, 1], "b": table[:, 2]},
        learning_rate_held=float(eta),
        engine="float32 emulation (tests)",
        tensorflow_version="emulated",
        backward=first,
    )


def emulated_tape(problem) -> TapeResult:
    step = _step(problem, np.float32(problem.initial.values["W"]),
                 np.float32(problem.initial.values["b"]))  # fmt: skip
    return TapeResult(
        loss=float(step.values["loss"][0]),
        gradients={name: float(step.adjoints[name][0]) for name in ("W", "b")},
        tensorflow_version="emulated",
    )


# --- The references ------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["mse", "mae"])
@pytest.mark.parametrize("data", ["seed", "single", "tf-examples"])
def test_the_references_equal_an_exact_computation_by_hand(loss, data):
    dataset = BUILTIN_DATASETS[data]
    ground = prepare(problem_for(loss, data))
    assert ground.references == by_hand(loss, dataset.x, dataset.y, INIT["W"], INIT["b"])


def test_the_mae_derivation_is_sign_r_verified_step_by_step():
    report = explain(problem_for("mae"), None, emulated_trace(problem_for("mae")), backward=True)
    for derivation in report.derivations:
        assert derivation.verified and derivation.written_out_verified
        assert all(step.verified for step in derivation.steps)
    assert r"\operatorname{sign}" in report.derivations[0].result
    assert "1 \\operatorname{sign}" not in report.derivations[0].result
    assert report.problem.derivation_note == "explain.sign_convention"


# --- The tape within its bound, and wrong derivatives caught -------------------------------


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_the_emulated_tape_agrees_within_its_bound(loss):
    problem = problem_for(loss)
    report = explain(problem, None, emulated_trace(problem), backward=True)
    assert [c.verdict for c in report.checks] == ["pass"] * 3
    assert report.backward is not None and report.backward.ok, report.backward.failures
    assert report.backward.ops_match
    assert report.training is not None and report.training.ok
    assert report.training.steps_checked == STEPS
    assert report.ok


@pytest.mark.parametrize(
    ("loss", "wrong"),
    [(loss, kind) for loss in ("mse", "mae") for kind in get_loss(loss).wrong_derivatives],
)
def test_each_offered_wrong_derivative_is_flagged(loss, wrong):
    problem = problem_for(loss)
    report = explain(problem, wrong, emulated_trace(problem), backward=True)
    assert not report.ok
    assert any(check.verdict == "fail" for check in report.checks[1:])


def test_the_mae_mistakes_move_the_gradient_as_a_learner_would():
    """r for sign(r) gives the mean of r x (the squared error's gradient over 2); the
    flipped sign gives minus the gradient."""
    dataset = BUILTIN_DATASETS["tf-examples"]
    problem = problem_for("mae")
    right = prepare(problem).references
    half_mse = by_hand("mse", dataset.x, dataset.y, INIT["W"], INIT["b"])
    assert prepare(problem, "r-for-sign").references["W"] == half_mse["W"] / 2
    assert prepare(problem, "flip-sign").references["W"] == -right["W"]


# --- The kink: sign(r) at a residual within its rounding error of 0 ------------------------

# x = 1, y = 0.3 with W = 0.2, b = 0.1: in float32 the exact residual is -7.45e-9, far
# inside its rounding error (about 1e-7), and the tape rounds W + b - y to exactly 0.
KINK = Dataset("kink", (1.0, 2.0), (0.3, 5.0), "test: a residual at the kink")
KINK_INIT = {"W": 0.2, "b": 0.1}


def test_the_kink_sample_is_as_described():
    r = _f32(0.2) + _f32(0.1) - _f32(0.3)
    assert r != 0 and abs(r) < Fraction(1, 10**7)
    assert np.float32(0.2) * np.float32(1.0) + np.float32(0.1) - np.float32(0.3) == 0


def test_a_residual_at_the_kink_makes_the_gradients_inconclusive_not_failed():
    problem = problem_for("mae", KINK, KINK_INIT, steps=2)
    trace = emulated_trace(problem)
    # The tape's gradient differs from the exact sign(r)'s by a whole term, rightly:
    exact = by_hand("mae", KINK.x, KINK.y, KINK_INIT["W"], KINK_INIT["b"])
    assert Fraction(float(trace.gradients["b"][0])) != exact["b"]
    report = explain(problem, None, trace, backward=True)
    loss, *gradients = report.checks
    assert loss.verdict == "pass"
    for check in gradients:
        assert check.verdict == "inconclusive" and check.kink is not None
        assert check.kink.sample == 1
        assert "kink" in str(check.reason)
    assert report.backward is not None and report.backward.ok
    assert report.backward.inconclusive > 0
    assert report.ok and report.verdict == "inconclusive"


def test_away_from_the_kink_the_same_data_passes():
    problem = problem_for("mae", KINK, {"W": 3.0, "b": 0.15}, steps=2)
    report = explain(problem, None, emulated_trace(problem), backward=True)
    assert [c.verdict for c in report.checks] == ["pass"] * 3


def test_at_the_kink_a_tape_that_is_wrong_elsewhere_is_not_passed():
    """Inconclusive says nothing either way: the loss's own check still fails a wrong tape."""
    problem = problem_for("mae", KINK, KINK_INIT, steps=0)
    ground = prepare(problem)
    from derive.report.build import complete

    tape = emulated_tape(problem)
    broken = TapeResult(loss=tape.loss * 2, gradients=tape.gradients, tensorflow_version="x")
    report = complete(ground, broken, None, backward=False)
    assert report.checks[0].verdict == "fail" and not report.ok


# --- Training facts, JSON, HTML in two languages, handouts ---------------------------------


def test_mae_has_no_hessian_bound_and_says_what_plays_its_part():
    problem = problem_for("mae")
    report = explain(problem, None, emulated_trace(problem), backward=True)
    assert report.training.stability is None and report.training.curvature == "none"
    document = json.loads(_json(report))
    assert document["training"]["stable_lr"] is None
    assert document["training"]["curvature"] == "none"
    assert document["problem"]["loss_name"] == "mae"
    assert document["problem"]["parameters"] == ["W", "b"]


def _json(report) -> str:
    from derive.render.jsonfile import to_json

    schema = json.loads((resources.files("derive") / "schema" / "report.schema.json").read_text())
    text = to_json(report)
    jsonschema.validate(json.loads(text), schema)
    return text


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", ["mean of the absolute residuals", "has no curvature", "a subgradient"]),
        ("ko", ["잔차 절댓값의 평균", "곡률이 없습니다", "하방미분"]),
    ],
)
def test_the_mae_report_renders(lang, words):
    from derive.common.i18n import translator
    from derive.render.outputs import to_html

    problem = problem_for("mae")
    report = explain(problem, None, emulated_trace(problem), backward=True)
    html = to_html(report, lang)
    assert translator(lang).text("loss.mae") in html
    for word in words:
        assert word in html, word


def test_the_kink_report_renders_its_reason_in_korean():
    from derive.render.outputs import to_html

    problem = problem_for("mae", KINK, KINK_INIT, steps=2)
    report = explain(problem, None, emulated_trace(problem), backward=True)
    html = to_html(report, "ko")
    assert "꺾이는 점" in html
    _json(report)


def test_mae_handouts_are_checked_against_the_tape():
    from derive.handouts.files import document_html
    from derive.handouts.sheets import build_handouts

    handouts = build_handouts(4, class_seed=11, tape=emulated_tape, loss="mae")
    assert handouts.ok
    for sheet in handouts.sheets:
        assert sheet.problem.loss == "mae"
        assert all(k.ok for k in sheet.checks)
        w, b = (as_fraction(sheet.init_given[name]) for name in ("W", "b"))
        for work in sheet.hand.samples:
            r = w * as_fraction(work.x[0]) + b - as_fraction(work.y)
            assert r != 0 and work.square == abs(r)
            assert work.shares == {"W": _sign(r) * as_fraction(work.x[0]), "b": _sign(r)}
    html = document_html(handouts, True)
    assert "|<i>r</i><sub>1</sub>|" in html
    mse = build_handouts(4, class_seed=11, tape=emulated_tape)
    assert {s.spec.identifier for s in mse.sheets}.isdisjoint(
        s.spec.identifier for s in handouts.sheets
    )


def as_fraction(value: float) -> Fraction:
    return Fraction(repr(float(value)))


# --- The real tape -------------------------------------------------------------------------


@pytest.mark.tensorflow
@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_the_real_tape_agrees_within_its_bound(loss):
    from derive.tape.training import train

    problem = problem_for(loss)
    run = train(problem)
    assert run.tensorflow_version != "emulated"
    report = explain(problem, None, run, backward=True)
    assert [c.verdict for c in report.checks] == ["pass"] * 3
    assert report.backward.ok and report.backward.ops_match
    assert report.training.ok and report.ok
    wrong = explain(problem, get_loss(loss).wrong_derivatives[0], run, backward=True)
    assert not wrong.ok


@pytest.mark.tensorflow
def test_the_real_tape_takes_the_other_side_at_the_kink_and_is_not_failed():
    from derive.tape.training import train

    problem = problem_for("mae", KINK, KINK_INIT, steps=2)
    run = train(problem)
    exact = by_hand("mae", KINK.x, KINK.y, KINK_INIT["W"], KINK_INIT["b"])
    assert Fraction(float(run.gradients["b"][0])) != exact["b"]  # sign(fl(r)) = 0
    report = explain(problem, None, run, backward=True)
    assert [c.verdict for c in report.checks] == ["pass", "inconclusive", "inconclusive"]
    assert report.ok


# --- Beyond the exact limit: error-free expansions ------------------------------------------


def test_an_expansion_knows_its_sign_exactly_where_float64_rounds_to_zero():
    from derive.exact.expansion import Expansion

    # 1 + 2^-60 - 1 is 2^-60 exactly; its float64 sum is 0
    value = Expansion.of([1.0, 1.0, 2.0]) + Expansion.of([2.0**-60, -(2.0**-60), 0.0]) - 1.0
    assert list(value.sign().parts[0]) == [1.0, -1.0, 1.0]
    assert list(Expansion.of([0.0, -3.0]).sign().parts[0]) == [0.0, -1.0]
    magnitude = abs(value)
    assert [sum(Fraction(float(p[i])) for p in magnitude.parts) for i in range(3)] == [
        Fraction(1, 2**60),
        Fraction(1, 2**60),
        Fraction(1),
    ]


def test_mae_beyond_the_exact_limit_matches_the_fractions():
    """n = 2500 takes the error-free float64 path for the references and the magnitudes
    (M of dL/db is the mean of n ones: 1, not 1/n)."""
    from derive.exact.reference import EXACT_LIMIT

    rng = np.random.default_rng(5)
    n = EXACT_LIMIT + 500
    x = rng.uniform(0, 10, n).round(3)
    y = (0.3 * x + 1 + rng.normal(0, 0.5, n)).round(3)
    dataset = Dataset("big", tuple(x), tuple(y), "test: more samples than the exact limit")
    problem = problem_for("mae", dataset, steps=0)
    ground = prepare(problem)
    assert not ground.samples.exact
    hand = by_hand("mae", x, y, INIT["W"], INIT["b"])
    for key in ("W", "b"):
        assert abs(ground.references[key] - hand[key]) <= abs(hand[key]) * Fraction(1, 2**52)
    assert ground.magnitudes[2] >= 1
    report = complete_with_emulation(ground)
    assert [c.verdict for c in report.checks] == ["pass"] * 3


def complete_with_emulation(ground):
    from derive.report.build import complete

    return complete(ground, emulated_tape(ground.problem), None, backward=False)
