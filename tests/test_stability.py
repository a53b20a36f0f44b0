"""The learning-rate bound eta < 2 / lambda_max(H), and training on standardized data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from derive.cli.main import main
from derive.exact.stability import round_down, stability
from derive.problem.problem import Dataset, Training, make_problem
from tests.conftest import SINGLE_INIT, SINGLE_INIT_FLAG

SMALL = Dataset("small", (1.0, 2.0, 4.0), (1.0, 1.5, 3.0), "test")


def _longley_like(path):  # type: ignore[no-untyped-def]
    """16 rows with x of 2.3e5 to 5.5e5 and y of 6e4 to 7e4, as in economic tables."""
    generator = np.random.default_rng(5)
    x = np.linspace(2.3e5, 5.5e5, 16) + generator.normal(0, 4e3, 16)
    y = 6e4 + (x - 2.3e5) / 3.2e5 * 1e4 + generator.normal(0, 300, 16)
    rows = "".join(f"{a:.0f},{b:.0f}\n" for a, b in zip(x, y, strict=True))
    path.write_text("x,y\n" + rows)
    return path


class _NoJob:
    def close(self) -> None:
        pass


@pytest.fixture
def without_tape(monkeypatch):  # type: ignore[no-untyped-def]
    """The command line up to the checks, on the float32 emulation (no training)."""
    from derive.render.outputs import render_all
    from derive.report.build import explain
    from tests.emulated_tape import emulated_tape

    def run(job, problem, wrong_derivative, formats, progress, *, lang="en", backward=True):  # type: ignore[no-untyped-def]
        report = explain(problem, wrong_derivative, tape=emulated_tape, backward=False)
        return report, render_all(report, formats, lang=lang)

    monkeypatch.setattr("derive.cli.background.TrainingJob", _NoJob)
    monkeypatch.setattr("derive.cli.pipeline.run", run)


def test_stable_rate_is_two_over_the_largest_eigenvalue(symbolic):
    problem = make_problem(SMALL, init=SINGLE_INIT)
    found = stability(problem, symbolic)
    # H of the mean squared error of W x + b, built from the data by hand, and its
    # eigenvalues by LAPACK rather than mpmath.
    x = np.asarray(problem.x)
    n = x.size
    hessian = 2 / n * np.array([[np.sum(x**2), np.sum(x)], [np.sum(x), n]])
    expected = np.linalg.eigvalsh(hessian)
    assert not found.local
    assert found.eigenvalues == pytest.approx(expected, rel=1e-12)
    assert found.stable_lr == pytest.approx(2 / expected[-1], rel=1e-12)
    assert found.suggested_lr <= 0.9 * found.stable_lr
    # The contraction of the slowest direction, and the steps it needs for 1e-6.
    rho = max(abs(1 - found.learning_rate * expected))
    assert found.steps_needed == pytest.approx(math.log(1e6) / -math.log(rho), rel=1e-9)


@pytest.mark.parametrize(("value", "expected"), [(0.0956, 0.09), (1.0, 1.0), (5.63e-12, 5e-12)])
def test_suggested_rates_are_rounded_down_to_one_digit(value, expected):
    assert round_down(value) == pytest.approx(expected, rel=1e-12)
    assert round_down(value) <= value


@pytest.mark.tensorflow
def test_the_bound_separates_divergence_from_convergence(symbolic):
    from derive.tape.training import train

    bound = stability(make_problem(SMALL, init=SINGLE_INIT), symbolic).stable_lr
    above = make_problem(SMALL, init=SINGLE_INIT, training=Training(400, 1.2 * bound, 50))
    below = make_problem(SMALL, init=SINGLE_INIT, training=Training(400, 0.95 * bound, 50))
    assert train(above).first_non_finite() is not None
    converging = train(below)
    assert converging.first_non_finite() is None
    loss = np.asarray(converging.loss)
    assert loss[-1] < loss[0]


def test_large_values_are_warned_about_before_training(tmp_path, capsys, without_tape):
    data = _longley_like(tmp_path / "big.csv")
    code = main(["report", "--data", str(data), "--out", str(tmp_path), *SINGLE_INIT_FLAG,
                 "--no-backward", "--format", "json"])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert code == 0  # the emulation checks the initial gradient only
    warning = next(i for i, line in enumerate(lines) if "WARNING: learning rate 0.01" in line)
    first_check = next(i for i, line in enumerate(lines) if line.split()[:1] == ["dL/dW"])
    assert warning < first_check
    assert "--standardize" in lines[warning] and "2/lambda_max" in lines[warning]
    # x near 4e5: even at the suggested rate the slowest direction needs far more than
    # the 1000 steps asked for, so --standardize comes first, and the rate alone is no fix
    assert "try --standardize: at --lr" in lines[warning]
    assert "steps to get close, not 1000" in lines[warning]


def test_the_rate_alone_is_advised_only_when_it_gets_close(symbolic):
    """Lowering the rate is the advice when the stable rate converges in about the
    steps asked for; when it would need far more, --standardize is."""
    from derive.exact.stability import FAR

    small = stability(make_problem(SMALL, init=SINGLE_INIT, training=Training(1000, 1.0)), symbolic)
    assert not small.stable and not small.rate_alone_too_slow
    assert small.steps_at_suggested < FAR * small.steps
    big = Dataset("big", (860.0, 1320.0, 1780.0, 2480.0), (176e3, 259e3, 342e3, 468e3), "test")
    found = stability(make_problem(big, init=SINGLE_INIT), symbolic)
    assert not found.stable and found.rate_alone_too_slow
    assert found.steps_at_suggested > FAR * found.steps


def test_no_warning_at_a_stable_rate(tmp_path, capsys, without_tape):
    main(["report", "--data", "seed", "--out", str(tmp_path), *SINGLE_INIT_FLAG,
          "--no-backward", "--format", "json"])  # fmt: skip
    assert "WARNING" not in capsys.readouterr().out


def test_standardizing_constant_x_is_bad_input(tmp_path, capsys, without_tape):
    code = main(["report", "--x", "5,5,5", "--y", "1,2,3", "--standardize",
                 "--out", str(tmp_path)])  # fmt: skip
    message = capsys.readouterr().err.strip()
    assert code == 2
    assert message.startswith("error: --standardize") and "every x" in message
    assert "\n" not in message


def test_standardized_problem_holds_z_scores():
    problem = make_problem(SMALL, init=SINGLE_INIT, standardize=True)
    given = np.asarray(SMALL.x)
    z = (given - given.mean()) / given.std()
    assert problem.x == tuple(z.astype(np.float32).astype(float).tolist())
    assert problem.standardized is not None
    assert problem.standardized.std_x == pytest.approx(given.std(), rel=1e-15)


@pytest.mark.tensorflow
def test_standardize_makes_large_data_pass_in_original_units(tmp_path, capsys):
    data = _longley_like(tmp_path / "big.csv")
    code = main(["report", "--data", str(data), "--out", str(tmp_path), *SINGLE_INIT_FLAG,
                 "--standardize", "--lr", "0.1", "--steps", "300", "--no-backward",
                 "--format", "json", "--quiet"])  # fmt: skip
    assert code == 0
    document = json.loads((tmp_path / "big.json").read_text())
    line = document["training"]["final_original_units"]
    x, y = np.loadtxt(data, delimiter=",", skiprows=1, unpack=True)
    slope, intercept = np.polyfit(x, y, 1)
    assert line["W"] == pytest.approx(slope, rel=1e-4)
    assert line["b"] == pytest.approx(intercept, rel=1e-4)
    assert document["problem"]["standardized"]["mean_x"] == pytest.approx(x.mean(), rel=1e-15)
    assert document["training"]["stability"]["stable"] is True
