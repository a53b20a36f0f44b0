"""The training trace: every step checked, and a checker that fails when it should.

Most tests use a trace made without TensorFlow (exact gradients rounded to float32,
the optimizer's update done in float32: ``reference_trace``) and break it on purpose.
Tests marked ``tensorflow`` run the real tape.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
from fractions import Fraction

import numpy as np
import pytest

from derive.exact.reference import Samples, magnitude
from derive.exact.sums import DataSums, Evaluator, affine_solution
from derive.problem.problem import BUILTIN_DATASETS, Training, make_problem
from derive.report.training import check_training, reference_trace
from derive.report.training_checks import update_bound
from derive.symbolic.derivation import evaluate_exact, verify_equal, wrong_formula
from derive.tape.training import Trace
from tests.conftest import SINGLE_INIT, SINGLE_INIT_FLAG


def problem_for(data: str = "seed", **training: float) -> object:
    return make_problem(BUILTIN_DATASETS[data], init=SINGLE_INIT, training=Training(**training))


def formulas(symbolic, wrong: str | None = None):  # type: ignore[no-untyped-def]
    result = {name: d.result for name, d in symbolic.derivations.items()}
    if wrong:
        result = {name: wrong_formula(f, wrong) for name, f in result.items()}
    return result


def faithful(problem, symbolic) -> Trace:  # type: ignore[no-untyped-def]
    return reference_trace(problem, symbolic, formulas(symbolic))


def tampered(trace: Trace, **changes: dict[str, np.ndarray]) -> Trace:
    return dataclasses.replace(trace, **changes)


# --- The fast exact form of the references -------------------------------------------------


@pytest.mark.parametrize("data", ["seed", "single", "tf-examples"])
@pytest.mark.parametrize("wrong", [None, "drop-factor-2", "x-for-y"])
def test_sums_form_gives_the_same_numbers_as_the_derived_formula(symbolic, data, wrong):
    problem = problem_for(data)
    xs, ys = problem.exact(problem.x), problem.exact(problem.y)
    draw = random.Random(4)
    for formula in [symbolic.loss, *formulas(symbolic, wrong).values()]:
        evaluator = Evaluator(symbolic, formula, DataSums(problem.x, problem.y))
        assert evaluator.form is not None and evaluator.form.verified
        assert verify_equal(evaluator.form.expression, formula.expression)
        for _ in range(5):
            theta = [Fraction(draw.uniform(-3, 3)) for _ in symbolic.parameters]
            named = dict(zip(symbolic.parameters, theta, strict=True))
            assert evaluator.value(theta) == evaluate_exact(symbolic, formula, named, xs, ys)[0]
            assert evaluator.magnitude(theta) == magnitude(
                symbolic, formula, named, Samples.of(problem.x, problem.y)
            )


def test_sums_form_reads_like_the_textbook(symbolic):
    problem = problem_for("seed")
    gradient = Evaluator(symbolic, symbolic.derivations["W"].result, DataSums(problem.x, problem.y))
    assert gradient.form.latex == (
        r"\frac{2}{n} \left(W \sum_{i=1}^{n} {x}_{i}^{2} + b \sum_{i=1}^{n} {x}_{i} "
        r"- \sum_{i=1}^{n} {x}_{i} {y}_{i}\right)"
    )


def test_closed_form_optimum_is_the_least_squares_line(symbolic):
    problem = problem_for("tf-examples")
    data = DataSums(problem.x, problem.y)
    gradients = [Evaluator(symbolic, d.result, data) for d in symbolic.derivations.values()]
    solution = affine_solution(gradients)
    assert solution is not None
    assert all(g.value(solution) == 0 for g in gradients)  # exactly zero
    slope, intercept = np.polyfit(np.asarray(problem.x), np.asarray(problem.y), 1)
    assert float(solution[0]) == pytest.approx(slope, rel=1e-12)
    assert float(solution[1]) == pytest.approx(intercept, rel=1e-12)


def test_no_unique_optimum_for_one_sample(symbolic):
    problem = problem_for("single")
    data = DataSums(problem.x, problem.y)
    gradients = [Evaluator(symbolic, d.result, data) for d in symbolic.derivations.values()]
    assert affine_solution(gradients) is None


# --- The update check ----------------------------------------------------------------------


def test_update_bound_holds_for_the_optimizers_arithmetic():
    """fl(W - fl(eta32 * g)) in float32 is within the bound of W - eta g, for any W, g."""
    draw = random.Random(7)
    eta = 0.01
    eta32 = np.float32(eta)
    for _ in range(2000):
        w = np.float32(draw.uniform(-10, 10) * 10 ** draw.randint(-6, 6))
        g = np.float32(draw.uniform(-10, 10) * 10 ** draw.randint(-6, 6))
        computed = np.float32(w - np.float32(eta32 * g))
        exact = Fraction(float(w)) - Fraction(eta) * Fraction(float(g))
        bound = update_bound(
            Fraction(float(w)), Fraction(eta) * Fraction(float(g)), "float32", Fraction(eta)
        )
        assert abs(Fraction(float(computed)) - exact) <= Fraction(bound.value)


def test_update_bound_rejects_another_learning_rate():
    w, g = Fraction(0.5), Fraction(-1.25)
    change = Fraction(0.01) * g
    bound = update_bound(w, change, "float32", Fraction(0.01))
    wrong = float(np.float32(np.float32(0.5) - np.float32(np.float32(0.0101) * np.float32(-1.25))))
    assert abs(Fraction(wrong) - (w - change)) > Fraction(bound.value)


# --- Every step checked ---------------------------------------------------------------------


def test_a_faithful_trace_passes_every_step(symbolic):
    problem = problem_for("seed")
    trace = reference_trace(problem, symbolic, formulas(symbolic))
    facts = check_training(problem, symbolic, formulas(symbolic), trace)
    assert facts.ok and facts.first_failure is None and facts.diverged_at is None
    assert facts.steps_checked == 1000
    assert facts.checks_made == 1001 * 3 + 1000 * 2  # L, dL/dW, dL/db; two updates
    assert facts.bit_exact_updates == facts.updates_checked == 2000
    assert [row.step for row in facts.rows] == list(range(0, 1001, 50))
    assert all(row.ok for row in facts.rows)
    assert facts.final == {
        name: float(trace.parameters[name][1000]) for name in symbolic.parameters
    }
    assert facts.optimum is not None and facts.optimum.loss == 0.0  # two points: exact fit
    assert facts.optimum.loss_gap == pytest.approx(facts.final_loss, rel=1e-6)


def test_display_rows_end_at_the_last_step(symbolic):
    problem = problem_for("seed", steps=1000, display_step=300)
    facts = check_training(problem, symbolic, formulas(symbolic), faithful(problem, symbolic))
    assert [row.step for row in facts.rows] == [0, 300, 600, 900, 1000]


def test_a_wrong_gradient_at_a_later_step_is_flagged(symbolic):
    problem = problem_for("seed")
    trace = reference_trace(problem, symbolic, formulas(symbolic))
    gradient = trace.gradients["W"].copy()
    gradient[700] /= 2  # the factor 2 lost, at one step only
    broken = tampered(trace, gradients={**trace.gradients, "W": gradient})
    facts = check_training(problem, symbolic, formulas(symbolic), broken)
    assert not facts.ok
    assert facts.first_failure is not None
    assert (facts.first_failure.step, facts.first_failure.check.quantity) == (700, "dL/dW")
    assert facts.first_failing_step == 700
    # The parameters moved with the right gradient, so the update recorded next does
    # not follow from the wrong one: that is the second and last failure.
    assert facts.failed_checks == 2
    rows = {row.step: row for row in facts.rows}
    assert rows[650].ok and not rows[700].ok and not rows[1000].ok


def test_near_the_optimum_the_update_check_catches_what_the_gradient_bound_cannot(symbolic):
    """On the 17 points the gradient at step 700 is about 4e-5, below its worst-case
    rounding bound (gamma_k M, M about 60): halving it stays within the bound. The
    parameters moved with the true gradient, though, and the update check, whose
    tolerance is relative to W, flags the step after."""
    problem = problem_for("tf-examples")
    trace = reference_trace(problem, symbolic, formulas(symbolic))
    gradient = trace.gradients["W"].copy()
    gradient[700] /= 2
    broken = tampered(trace, gradients={**trace.gradients, "W": gradient})
    facts = check_training(problem, symbolic, formulas(symbolic), broken)
    assert (facts.first_failure.step, facts.first_failure.check.quantity) == (701, "W (update)")
    assert facts.failed_checks == 1


def test_a_wrong_update_rule_at_a_later_step_is_flagged(symbolic):
    """From step 500 on the parameters move with twice the learning rate."""
    problem = problem_for("seed")
    honest = reference_trace(problem, symbolic, formulas(symbolic))
    # Continue from the values after 499 steps, with eta = 0.02, for the other 501.
    restart = dataclasses.replace(
        problem,
        initial=dataclasses.replace(
            problem.initial,
            values={n: float(honest.parameters[n][499]) for n in symbolic.parameters},
        ),
        training=Training(steps=501, learning_rate=0.02),
    )
    tail = reference_trace(restart, symbolic, formulas(symbolic))

    def joined(head: np.ndarray, rest: np.ndarray) -> np.ndarray:
        return np.concatenate([head[:499], rest])

    broken = tampered(
        honest,
        parameters={n: joined(honest.parameters[n], tail.parameters[n]) for n in honest.parameters},
        gradients={n: joined(honest.gradients[n], tail.gradients[n]) for n in honest.gradients},
        loss=joined(honest.loss, tail.loss),
    )
    facts = check_training(problem, symbolic, formulas(symbolic), broken)
    assert not facts.ok
    assert (facts.first_failure.step, facts.first_failure.check.quantity) == (500, "W (update)")
    # Exactly the two updates of each step from 500 to 1000 fail; every gradient and
    # loss is still right (they were computed at the values the tape held).
    assert facts.failed_checks == 2 * 501
    assert facts.rows[9].ok and not facts.rows[10].ok  # steps 450 and 500


def test_a_wrong_derivative_fails_from_the_first_step(symbolic):
    problem = problem_for("seed", steps=20)
    trace = reference_trace(problem, symbolic, formulas(symbolic))
    facts = check_training(problem, symbolic, formulas(symbolic, "drop-mean"), trace)
    assert not facts.ok and facts.first_failure.step == 0


def test_divergence_stops_the_checks_and_is_reported(symbolic):
    problem = problem_for("tf-examples", learning_rate=1.5)
    trace = reference_trace(problem, symbolic, formulas(symbolic))
    facts = check_training(problem, symbolic, formulas(symbolic), trace)
    assert facts.diverged_at is not None and 1 < facts.diverged_at < 100
    assert not facts.ok and facts.first_failure is None
    assert facts.first_failing_step == facts.diverged_at
    assert facts.steps_checked == facts.diverged_at - 1
    assert facts.final_step == facts.diverged_at - 1
    assert math.isfinite(facts.final_loss)
    assert not facts.rows[-1].finite and facts.rows[-1].step == facts.diverged_at
    assert all(row.finite for row in facts.rows[:-1])


def test_json_training_fields(symbolic):
    from derive.report.todict import training_to_dict

    problem = problem_for("tf-examples", learning_rate=1.5)
    facts = check_training(problem, symbolic, formulas(symbolic), faithful(problem, symbolic))
    data = json.loads(json.dumps(training_to_dict(facts), allow_nan=False))
    assert data["ok"] is False
    assert data["first_failing_step"] == data["diverged_at"] == facts.diverged_at
    assert set(data["final"]) == {"step", "W", "b", "loss"}
    assert data["displayed"][-1]["finite"] is False
    # the first non-finite step is checked too: its exact gradient where the
    # parameters are still finite, and one of the verdicts
    last = data["displayed"][-1]
    assert last["verdict"] in ("overflow", "fail")
    assert last["gradients"]["W"]["reference"] is None or math.isfinite(
        last["gradients"]["W"]["reference"]
    )
    assert data["steps_checked"] == facts.steps_checked


# --- Plots ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_facts(symbolic):
    problem = problem_for("seed")
    trace = reference_trace(problem, symbolic, formulas(symbolic))
    return trace, check_training(problem, symbolic, formulas(symbolic), trace)


def test_plots_are_deterministic_and_their_ids_unique(seed_facts):
    from derive.render.plotdata import plot_data
    from derive.render.plots import training_plots

    _, facts = seed_facts
    first = training_plots(plot_data(facts))
    assert set(first) == {"loss", "fit", "surface"}
    assert first == training_plots(plot_data(facts))
    page = "".join(first.values())
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)) > 10
    references = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', page))
    assert references <= set(ids)
    assert "style=" not in page and "<style" not in page  # no HTML CSS inside the SVG


def test_plots_from_the_trace_equal_plots_from_the_facts(seed_facts):
    from derive.render.plotdata import plot_data, plot_data_from_trace
    from derive.render.plots import training_plots

    trace, facts = seed_facts
    assert training_plots(plot_data_from_trace(facts.plot_spec, trace)) == training_plots(
        plot_data(facts)
    )


def test_plots_survive_divergence(symbolic):
    from derive.render.plotdata import plot_data
    from derive.render.plots import training_plots

    problem = problem_for("tf-examples", learning_rate=1.5)
    facts = check_training(problem, symbolic, formulas(symbolic), faithful(problem, symbolic))
    assert set(training_plots(plot_data(facts))) == {"loss", "fit", "surface"}


# --- Report, templates, command line ----------------------------------------------------------


def report_with(problem, symbolic, trace=None, wrong=None):  # type: ignore[no-untyped-def]
    from derive.report.build import explain

    trace = trace or reference_trace(problem, symbolic, formulas(symbolic))
    return explain(problem, wrong, trace)


def test_report_ok_includes_the_training_verdict(symbolic):
    problem = problem_for("seed", steps=30)
    trace = reference_trace(problem, symbolic, formulas(symbolic))
    assert report_with(problem, symbolic, trace).ok
    gradient = trace.gradients["b"].copy()
    gradient[25] = -gradient[25]
    broken = tampered(trace, gradients={**trace.gradients, "b": gradient})
    report = report_with(problem, symbolic, broken)
    assert all(check.ok for check in report.checks)  # the initial check still passes
    assert not report.ok
    assert report.to_dict()["training"]["first_failing_step"] == 25


def test_steps_zero_is_the_initial_check_only(symbolic):
    report = report_with(problem_for("seed", steps=0), symbolic)
    assert report.training is None and report.to_dict()["training"] is None


def test_html_shows_the_training(symbolic):
    from derive.render.outputs import to_html

    problem = problem_for("seed", steps=100, display_step=25)
    html = to_html(report_with(problem, symbolic))
    assert "8. Training: every step checked" in html
    assert html.count('<svg stroke-linejoin="round"') == 3  # three plots
    assert "All 100 steps checked" in html


def test_html_reports_divergence(symbolic):
    from derive.render.outputs import to_html

    html = to_html(report_with(problem_for("tf-examples", learning_rate=1.5), symbolic))
    assert "Training diverged" in html and "non-finite" in html


@pytest.mark.render
def test_pdf_renders_the_training_without_warnings(symbolic, caplog):
    from derive.render.outputs import to_html
    from derive.render.pdf import to_pdf

    problem = problem_for("tf-examples", steps=200, display_step=20)
    with caplog.at_level("WARNING", logger="weasyprint"):
        pdf = to_pdf(to_html(report_with(problem, symbolic)))
    assert pdf.startswith(b"%PDF")
    assert [r.getMessage() for r in caplog.records] == []


@pytest.mark.parametrize(
    "flags",
    [["--steps", "-1"], ["--lr", "0"], ["--lr", "nan"], ["--display-step", "0"], ["--steps", "x"]],
)
def test_bad_training_flags_are_bad_input(flags, tmp_path, capsys):
    from derive.cli.main import main

    assert main(["report", "--out", str(tmp_path), *flags]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_progress_bar_only_on_a_terminal():
    import io

    from derive.cli.progress import Progress

    quiet = io.StringIO()
    Progress(quiet).stage("training")
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    bar = Progress(shown, enabled=True)
    bar.stage("training")
    bar.steps(1000, 1000)
    bar.clear()
    assert "waiting for TensorFlow" in shown.getvalue()
    assert "checking step 1000 of 1000" in shown.getvalue()


# --- With TensorFlow ----------------------------------------------------------------------------


def original_loop(w0: float, b0: float, x: list[float], y: list[float], steps: int, lr: float):  # type: ignore[no-untyped-def]
    """The original script's loop, eager, as it is written there (W*X with a float64
    NumPy X, reduce_mean of the square, SGD.apply_gradients), recording every step."""
    import tensorflow as tf

    big_x, big_y = np.array(x), np.array(y)
    weight, bias = tf.Variable(w0, name="weight"), tf.Variable(b0, name="bias")
    optimizer = tf.optimizers.SGD(lr)
    rows = []
    for _ in range(steps):
        with tf.GradientTape() as g:
            loss = tf.reduce_mean(tf.square(weight * big_x + bias - big_y))
        gradients = g.gradient(loss, [weight, bias])
        rows.append([loss.numpy(), *(t.numpy() for t in gradients), weight.numpy(), bias.numpy()])
        optimizer.apply_gradients(zip(gradients, [weight, bias], strict=True))
    return np.array(rows, dtype=np.float32), weight.numpy(), bias.numpy()


@pytest.mark.tensorflow
@pytest.mark.parametrize("data", ["seed", "tf-examples"])
def test_compiled_loop_matches_the_original_eager_loop_bit_for_bit(data):
    from derive.tape.training import train

    problem = problem_for(data, steps=300)
    dataset = BUILTIN_DATASETS[data]
    rows, w, b = original_loop(
        SINGLE_INIT["W"], SINGLE_INIT["b"], list(dataset.x), list(dataset.y), 300, 0.01
    )
    for compiled in (True, False):
        trace = train(problem, compiled=compiled)
        assert np.array_equal(trace.loss[:300], rows[:, 0])
        assert np.array_equal(trace.gradients["W"][:300], rows[:, 1])
        assert np.array_equal(trace.gradients["b"][:300], rows[:, 2])
        assert np.array_equal(trace.parameters["W"][:300], rows[:, 3])
        assert np.array_equal(trace.parameters["b"][:300], rows[:, 4])
        assert (trace.parameters["W"][300], trace.parameters["b"][300]) == (w, b)


@pytest.mark.tensorflow
def test_final_values_match_the_original_after_1000_steps():
    from derive.report.build import build_report

    report = build_report("seed", init=SINGLE_INIT)
    _, w, b = original_loop(SINGLE_INIT["W"], SINGLE_INIT["b"], [3.3, 1.0], [1.7, 2.0], 1000, 0.01)
    assert report.ok
    assert report.training.steps_checked == 1000
    assert report.training.final == {"W": float(w), "b": float(b)}
    assert report.checks[1].tape == report.training.rows[0].tape["W"]


@pytest.mark.tensorflow
def test_a_changed_learning_rate_in_the_real_optimizer_is_flagged():
    """The real SGD with a schedule that doubles the learning rate after 500 steps."""
    import tensorflow as tf

    from derive.report.build import explain, formulas_for, symbolic_for
    from derive.tape.training import train

    problem = problem_for("seed")
    schedule = tf.keras.optimizers.schedules.PiecewiseConstantDecay([500], [0.01, 0.02])
    trace = train(problem, optimizer=lambda: tf.keras.optimizers.SGD(schedule))
    symbolic = symbolic_for(problem)
    facts = check_training(problem, symbolic, formulas_for(symbolic), trace)
    assert not facts.ok
    assert facts.first_failure.step == 502  # the optimizer's 502nd update uses 0.02
    assert facts.first_failure.check.quantity == "W (update)"
    assert explain(problem, None, trace).ok is False


@pytest.mark.tensorflow
def test_background_training_gives_the_in_process_trace():
    from derive.cli.background import TrainingJob
    from derive.render.plotdata import plot_data_from_trace
    from derive.render.plots import training_plots
    from derive.report.build import symbolic_for
    from derive.report.landscape import plot_spec
    from derive.tape.training import train

    problem = problem_for("tf-examples", steps=200)
    spec = plot_spec(problem, symbolic_for(problem))
    job = TrainingJob()
    try:
        job.submit(problem)
        trace = job.result()
        job.request_plots(spec)
        plots = job.plots()
    finally:
        job.close()
    local = train(problem)
    for name in ("W", "b"):
        assert np.array_equal(trace.parameters[name], local.parameters[name])
        assert np.array_equal(trace.gradients[name], local.gradients[name])
    assert plots == training_plots(plot_data_from_trace(spec, local))


@pytest.mark.tensorflow
def test_command_line_diverging_run_exits_1(tmp_path, capsys):
    from derive.cli.main import main

    code = main(
        [
            "report",
            "--data",
            "tf-examples",
            "--lr",
            "1.5",
            "--format",
            "json,html",
            "--out",
            str(tmp_path),
            *SINGLE_INIT_FLAG,
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "DIVERGED" in out
    data = json.loads((tmp_path / "tf-examples.json").read_text())
    assert data["ok"] is False and data["training"]["diverged_at"] > 1
    assert "Training diverged" in (tmp_path / "tf-examples.html").read_text()


@pytest.mark.tensorflow
def test_command_line_default_run(tmp_path):
    from derive.cli.main import main

    arguments = ["report", "--format", "json", "--out", str(tmp_path), "--quiet", "--seed", "3"]
    assert main(arguments) == 0
    training = json.loads((tmp_path / "seed.json").read_text())["training"]
    assert training["ok"] and training["steps_checked"] == 1000
    assert len(training["displayed"]) == 21 and training["first_failing_step"] is None
    assert {"W", "b", "loss"} <= set(training["final"])
