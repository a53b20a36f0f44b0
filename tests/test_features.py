"""Several features: ``tf.matmul(X, W) + b`` with a (k, 1) kernel, for every loss.

For k = 1, 2 and 5 and each loss, the exact references equal the textbook formulas worked
here in Fractions (not derive's); the tape, emulated op by op (and the real one behind the
`tensorflow` marker), agrees within its bound at the initial values, node by node and at
every training step; a learner's classic wrong derivative is flagged.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from derive.common.errors import InputError
from derive.problem.datasets import parse_columns, read_csv_text, resolve_dataset
from derive.problem.problem import Training, make_problem, several_features
from derive.report.build import explain, prepare
from tests.emulated_tape import emulated_trace

LOSSES = ("mse", "mae", "huber")
FEATURES = (1, 2, 5)
SUPPORTED = [(k, loss) for k in FEATURES for loss in LOSSES]
WEIGHTS = (0.25, -0.5, 0.75, 0.125, -0.375)
BIAS = 0.5
# The classic slip for each loss: the factor 2 of the power rule, the sign flipped
WRONG = {"mse": "drop-factor-2", "mae": "flip-sign", "huber": "flip-sign"}


def data(k: int, n: int = 7):
    """n samples of k features, two decimals, with residuals on both sides of 0 and of
    Huber's delta = 1 at the initial values below."""
    generator = np.random.RandomState(17 + k)
    columns = np.round(generator.uniform(-2, 3, size=(k, n)), 2)
    y = np.round(generator.uniform(-2, 2, size=n), 2)
    return several_features(f"k{k}", columns.tolist(), y.tolist(), "generated")


def names(k: int) -> list[str]:
    return ["W"] if k == 1 else [f"W_{j}" for j in range(1, k + 1)]


def problem_for(k: int, loss: str, steps: int = 4):
    init = {**dict(zip(names(k), WEIGHTS, strict=False)), "b": BIAS}
    return make_problem(data(k), init=init, loss=loss, training=Training(steps, 0.01, 1))


def _f32(value: float) -> Fraction:
    return Fraction(float(np.float32(value)))


def by_hand(k: int, loss: str) -> dict[str, Fraction]:
    """L and each gradient at the float32 values: r_i = sum_j W_j x_ij + b - y_i, and
    dL/dW_j = (1/n) sum_i f'(r_i) x_ij, dL/db = (1/n) sum_i f'(r_i)."""
    dataset = data(k)
    columns = [[_f32(v) for v in column] for column in dataset.columns]
    y = [_f32(v) for v in dataset.y]
    weights = [_f32(w) for w in WEIGHTS[:k]]
    b = _f32(BIAS)
    n = len(y)
    rows = list(zip(*columns, strict=True))
    r = [sum((w * x for w, x in zip(weights, row, strict=True)), b) - yi
         for row, yi in zip(rows, y, strict=True)]  # fmt: skip

    def sign(u: Fraction) -> int:
        return (u > 0) - (u < 0)

    value, slope = {
        "mse": (lambda u: u * u, lambda u: 2 * u),
        "mae": (abs, sign),
        "huber": (
            lambda u: u * u / 2 if abs(u) <= 1 else abs(u) - Fraction(1, 2),
            lambda u: u if abs(u) <= 1 else sign(u),
        ),
    }[loss]
    found = {"L": sum(map(value, r), Fraction(0)) / n}
    for name, column in zip(names(k), columns, strict=True):
        found[name] = sum((slope(ri) * x for ri, x in zip(r, column, strict=True)), Fraction(0)) / n
    found["b"] = sum(map(slope, r), Fraction(0)) / n
    return found


@pytest.mark.parametrize(("k", "loss"), SUPPORTED)
def test_the_references_equal_an_exact_computation_by_hand(k, loss):
    assert prepare(problem_for(k, loss)).references == by_hand(k, loss)


def test_the_test_data_reach_both_huber_branches_and_both_signs():
    """Otherwise the tests would not exercise sign(r) and the linear branch."""
    dataset = data(2)
    w, b = [_f32(v) for v in WEIGHTS[:2]], _f32(BIAS)
    r = [w[0] * _f32(p) + w[1] * _f32(q) + b - _f32(t)
         for p, q, t in zip(*dataset.columns, dataset.y, strict=True)]  # fmt: skip
    assert any(v > 1 for v in r) or any(v < -1 for v in r)
    assert any(abs(v) <= 1 for v in r)
    assert any(v > 0 for v in r) and any(v < 0 for v in r)


@pytest.mark.parametrize(("k", "loss"), SUPPORTED)
def test_the_emulated_tape_agrees_within_its_bound(k, loss):
    problem = problem_for(k, loss)
    report = explain(problem, None, emulated_trace(problem), backward=True)
    assert [c.verdict for c in report.checks] == ["pass"] * (k + 2)
    assert report.backward is not None and report.backward.ok, report.backward.failures
    assert report.backward.ops_match
    assert report.training is not None and report.training.ok
    assert report.ok


@pytest.mark.parametrize(("k", "loss"), SUPPORTED)
def test_a_classic_wrong_derivative_is_flagged(k, loss):
    problem = problem_for(k, loss, steps=0)
    report = explain(problem, WRONG[loss], emulated_trace(problem), backward=False)
    loss_check, *gradients = report.checks
    assert loss_check.ok and not report.ok
    assert all(not check.ok for check in gradients)


def test_the_parameters_are_named_by_the_kernel_row():
    problem = problem_for(2, "mse")
    assert problem.model_entry.parameters == ("W_1", "W_2", "b")
    assert problem_for(1, "mse").model_entry.parameters == ("W", "b")
    assert [node.op for node in problem.model_entry.graph] == ["matmul", "add"]


def test_the_derivation_has_the_index_form_for_each_weight():
    ground = prepare(problem_for(2, "mse"))
    derivations = ground.symbolic.derivations
    assert list(derivations) == ["W_1", "W_2", "b"]
    assert all(d.verified for d in derivations.values())
    assert r"{x}_{i,2}" in derivations["W_2"].result.latex


# --- Input: --x repeated, --columns with several features ---------------------------------


def test_inline_features_and_csv_columns_give_the_same_data():
    inline = resolve_dataset(None, [(1.0, 2.0, 3.0), (0.5, -1.0, 2.0)], (1.0, 0.0, 2.0))
    csv = read_csv_text("a,b,t\n1,0.5,1\n2,-1,0\n3,2,2\n", "d.csv", parse_columns("a,b,t"))
    assert inline.columns == csv.columns and inline.y == csv.y
    assert csv.feature_names == ("a", "b") and csv.k == 2


@pytest.mark.parametrize(
    ("columns", "x", "message"),
    [
        ("a,a,y", None, "--columns names a column twice"),
        ("y", None, "--columns expects"),
    ],
)
def test_bad_columns_are_one_clear_error(columns, x, message):
    with pytest.raises(InputError, match=message):
        parse_columns(columns)


def test_keras_reduces_an_n_by_1_huber_loss_over_the_batch():
    """On (n, 1) predictions Keras takes the mean of the last axis, then divides the
    batch's sum by its size: the replay runs the same ops (the tests above match them)."""
    ops = [node.op for node in problem_for(2, "huber").loss_entry.graph]
    assert ops[-1] == "batch_mean"
    assert [node.op for node in problem_for(1, "huber").loss_entry.graph][-1] == "mean"


def test_features_of_different_lengths_are_refused():
    dataset = several_features("bad", [(1.0, 2.0), (1.0,)], (1.0, 2.0), "inline")
    with pytest.raises(InputError, match="x2 and y have different lengths"):
        make_problem(dataset)
    with pytest.raises(InputError, match="unknown parameter in --init"):
        make_problem(data(2), init={"W": 1.0, "b": 0.0})


# --- The real tape ------------------------------------------------------------------------


@pytest.mark.tensorflow
@pytest.mark.parametrize(("k", "loss"), SUPPORTED)
def test_the_real_tape_agrees_within_its_bound(k, loss):
    from derive.tape.training import train

    problem = problem_for(k, loss)
    report = explain(problem, None, train(problem), backward=True)
    assert [c.verdict for c in report.checks] == ["pass"] * (k + 2)
    assert report.backward is not None and report.backward.ok and report.backward.ops_match
    assert report.training is not None and report.training.ok
    assert report.ok


# --- Handouts with two features -------------------------------------------------------------


def _hand_gradients(sample_rows, ys, weights, b, loss):
    """dL/dW_j and dL/db worked by hand at the printed decimals."""
    n = len(ys)
    r = [sum((w * x for w, x in zip(weights, row, strict=True)), b) - y
         for row, y in zip(sample_rows, ys, strict=True)]  # fmt: skip

    def slope(u):
        sign = (u > 0) - (u < 0)
        return {"mse": 2 * u, "mae": sign, "huber": u if abs(u) <= 1 else sign}[loss]

    found = {}
    for j in range(len(weights)):
        terms = (slope(ri) * row[j] for ri, row in zip(r, sample_rows, strict=True))
        found[f"W_{j + 1}"] = sum(terms, Fraction(0)) / n
    found["b"] = sum(map(slope, r), Fraction(0)) / n
    return found


@pytest.mark.parametrize("loss", LOSSES)
def test_handouts_with_two_features_have_keys_worked_by_hand(loss):
    from derive.handouts.facts import as_decimal
    from derive.handouts.sheets import build_handouts
    from tests.emulated_tape import emulated_tape

    handouts = build_handouts(3, class_seed=5, features=2, loss=loss, tape=emulated_tape)
    for sheet in handouts.sheets:
        assert sheet.ok
        assert sheet.problem.model_entry.parameters == ("W_1", "W_2", "b")
        rows = [tuple(as_decimal(v) for v in w.x) for w in sheet.hand.samples]
        ys = [as_decimal(w.y) for w in sheet.hand.samples]
        weights = [as_decimal(sheet.init_given[name]) for name in ("W_1", "W_2")]
        expected = _hand_gradients(rows, ys, weights, as_decimal(sheet.init_given["b"]), loss)
        assert dict(sheet.hand.gradients) == expected
    # two features draw their own numbers: other identifiers than one feature's
    one = build_handouts(3, class_seed=5, loss=loss, tape=emulated_tape)
    assert {s.spec.identifier for s in one.sheets}.isdisjoint(
        {s.spec.identifier for s in handouts.sheets}
    )


@pytest.mark.render
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_two_feature_sheet_and_key_fit_one_page(lang):
    from derive.handouts.files import render_set
    from derive.handouts.sheets import build_handouts
    from tests.emulated_tape import emulated_tape

    class_set = build_handouts(
        1, class_seed=3, features=2, loss="huber", tape=emulated_tape, lang=lang
    )
    for filled in (False, True):
        assert len(render_set(class_set, filled).pages) == 1  # raises unless one page each


def test_handouts_refuse_more_features_or_samples_than_fit():
    from derive.handouts.sheets import build_handouts

    with pytest.raises(InputError, match="--features must be 1 to 2"):
        build_handouts(1, class_seed=1, features=3)
    with pytest.raises(InputError, match="1 to 2 samples with 2 features"):
        build_handouts(1, class_seed=1, features=2, samples=3)


# --- A real data set: hundreds of rows, features on very different scales ---------------


@pytest.mark.parametrize("standardize", [True, False])
def test_the_diabetes_data_pass_scaled_and_unscaled_below_the_stable_rate(standardize):
    """Three features on very different scales: on z-scores at the default rate, and as
    given at a rate just below training.stable_lr (2 / lambda_max, about 1e-4 here)."""
    from derive.problem.problem import BUILTIN_DATASETS

    dataset = BUILTIN_DATASETS["diabetes"]
    assert dataset.k == 3 and len(dataset.y) == 442
    init = {"W_1": 0.5, "W_2": 0.25, "W_3": 0.75, "b": 0.1}
    rate = 0.01 if standardize else 9e-5
    problem = make_problem(
        dataset, init=init, standardize=standardize, training=Training(20, rate, 5)
    )
    report = explain(problem, None, emulated_trace(problem), backward=True)
    training = report.training
    assert training is not None and training.stability is not None
    assert rate < training.stability.stable_lr
    assert training.diverged_at is None
    assert report.verdict in ("pass", "inconclusive"), report.verdict


@pytest.mark.tensorflow
@pytest.mark.parametrize("standardize", [True, False])
def test_the_real_tape_passes_on_the_diabetes_data(standardize):
    from derive.problem.problem import BUILTIN_DATASETS
    from derive.tape.training import train

    init = {"W_1": 0.5, "W_2": 0.25, "W_3": 0.75, "b": 0.1}
    rate = 0.01 if standardize else 9e-5
    problem = make_problem(
        BUILTIN_DATASETS["diabetes"],
        init=init,
        standardize=standardize,
        training=Training(50, rate, 10),
    )
    report = explain(problem, None, train(problem), backward=True)
    assert report.backward is not None and report.backward.ops_match
    assert report.training is not None and report.training.diverged_at is None
    assert report.verdict in ("pass", "inconclusive"), report.verdict


# --- How several features read --------------------------------------------------------------


def test_the_reproduce_line_keeps_a_negative_first_value_with_its_flag():
    from derive.cli.parser import build_parser
    from derive.report.sections import reproduce_command

    dataset = resolve_dataset(None, [(-1.0, 2.0), (0.5, -3.0)], (-2.0, 1.0))
    problem = make_problem(dataset, init={"W_1": 0.5, "W_2": -0.25, "b": 0.0})
    command = reproduce_command(problem)
    assert "--x=-1.0,2.0 --x 0.5,-3.0 --y=-2.0,1.0" in command
    arguments = build_parser().parse_args(command.split()[3:])
    assert arguments.x == ["-1.0,2.0", "0.5,-3.0"] and arguments.y == "-2.0,1.0"


def test_names_and_the_matmul_row_read_as_written():
    from derive.common.i18n import readable_name
    from derive.models.ops import OPS
    from derive.symbolic.printing import subscripted

    assert readable_name("dL/dW_12") == "dL/dW₁₂" and readable_name("W") == "W"
    assert readable_name("data_1.csv") == "data₁.csv"  # only name fields get this
    assert subscripted("W_2", "t") == "W_{2}^{(t)}" and subscripted("b", "t") == "b_{t}"
    row = OPS["matmul"].written(["x_{i,1}", "x_{i,2}", "W_1", "W_2"])
    assert row == "W_1 x_{i,1} + W_2 x_{i,2}"


@pytest.mark.parametrize(("k", "loss"), [(2, "mse"), (2, "mae"), (5, "huber")])
def test_the_matrix_form_is_checked_element_by_element(k, loss):
    import dataclasses

    from derive.report.build import symbolic_for
    from derive.report.sections import matrix_form
    from derive.symbolic.derivation import wrong_formula

    symbolic = symbolic_for(problem_for(k, loss))
    form = matrix_form(symbolic)
    assert form is not None and form.verified
    assert r"X^{\mathsf{T}} v" in form.gradient
    # a lost factor in one entry is not proved equal
    derivations = dict(symbolic.derivations)
    last = f"W_{k}"
    derivations[last] = dataclasses.replace(
        derivations[last], result=wrong_formula(derivations[last].result, "drop-mean")
    )
    assert not matrix_form(dataclasses.replace(symbolic, derivations=derivations)).verified
    assert matrix_form(symbolic_for(problem_for(1, loss))) is None
