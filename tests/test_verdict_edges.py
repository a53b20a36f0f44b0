"""The check sits exactly at its bound: a tape value at the tolerance passes, one a hair
beyond it (the tolerance times 1 + 2^-20) fails -- for the loss and the gradients, the
backward pass's per-node checks (exact and float64 paths), the SGD update checks of the
training and of the handouts. A verdict twice too loose fails these tests.

Also what the report shows: every per-sample row is the problem's data and its own
arithmetic, every box of a printed key is the key value at the printed digits, and the
command line's exit code and JSON follow the verdict. All without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from derive.exact import reference as reference_module
from derive.exact.adjoint_values import (
    FloatReference,
    exact_forward_values,
    exact_references,
    fast_references,
)
from derive.exact.check import compare, rounding_bound
from derive.exact.reference import Samples
from derive.exact.roundings import tape_roundings
from derive.models.registry import get_loss, get_model
from derive.problem.problem import BUILTIN_DATASETS, Dataset, Training, make_problem
from derive.report.backward import build_backward
from derive.report.build import explain
from derive.symbolic.adjoints import derive_adjoints, graph_of
from derive.tape.backward import BackwardTrace
from derive.tape.gradient import TapeResult
from tests.conftest import SINGLE_INIT
from tests.emulated_tape import emulated_tape

U32 = Fraction(1, 2**24)
HAIR = Fraction(1, 2**20)  # beyond the bound by this fraction of it: must fail


def gamma(k: int, u: Fraction = U32) -> Fraction:
    return k * u / (1 - k * u)


def _float_near(value: Fraction, toward: Fraction) -> float:
    """The float64 nearest `value`, stepped toward `toward` if it overshot."""
    near = float(value)
    if abs(Fraction(near) - toward) > abs(value - toward):
        near = math.nextafter(near, float(toward))
    return near


def edge_tapes(reference: Fraction, tolerance: Fraction) -> dict[str, float]:
    """Tape values at reference +- tolerance (within, as close as float64 allows) and at
    reference +- tolerance * (1 + 2^-20) (beyond); each checked here in exact arithmetic."""
    tapes = {}
    for sign, side in ((1, "above"), (-1, "below")):
        inside = _float_near(reference + sign * tolerance, reference)
        beyond = float(reference + sign * tolerance * (1 + HAIR))
        assert abs(Fraction(inside) - reference) <= tolerance
        assert abs(Fraction(inside) - reference) >= tolerance * (1 - HAIR)  # at the edge
        assert abs(Fraction(beyond) - reference) > tolerance * (1 + HAIR / 2)
        tapes[f"inside {side}"], tapes[f"beyond {side}"] = inside, beyond
    return tapes


# --- compare ----------------------------------------------------------------------------


def test_compare_passes_exactly_at_the_bound_and_fails_just_beyond():
    # Every number here is an exact float: 1 +- 2^-20 is at the bound, 1 +- (2^-20 + 2^-40)
    # beyond it by 2^-20 of the bound.
    bound = dataclasses.replace(
        rounding_bound("float32", Fraction(1), Fraction(0), roundings=9), value=2.0**-20
    )
    for tape in (1 + 2.0**-20, 1 - 2.0**-20):
        assert compare("x", Fraction(1), tape, bound, "float32").ok
    for tape in (1 + 2.0**-20 + 2.0**-40, 1 - 2.0**-20 - 2.0**-40):
        assert not compare("x", Fraction(1), tape, bound, "float32").ok


@pytest.mark.parametrize("n", [1, 2, 17, 1000])
@pytest.mark.parametrize("magnitude", [Fraction(1, 3), Fraction(7, 2), Fraction(10**6, 7)])
def test_compare_at_the_edge_of_a_rounding_bound(n, magnitude):
    # k of the linear model's loss over n samples, in any order of the additions.
    k = tape_roundings(n, "float32", None, get_model("linear"), get_loss("mse"))["L"]
    bound = rounding_bound("float32", magnitude, Fraction(0), roundings=k)
    reference = magnitude * Fraction(2, 5)
    for where, tape in edge_tapes(reference, Fraction(bound.value)).items():
        check = compare("x", reference, tape, bound, "float32")
        assert check.ok == where.startswith("inside"), (where, check)


# --- the backward pass, node by node ----------------------------------------------------


def _perfect(problem, symbolic):
    """The trace of a tape without error beyond rounding each exact value to its dtype."""
    backward = derive_adjoints(graph_of(symbolic.model, symbolic.loss_definition), symbolic)
    values = exact_forward_values(backward, problem, symbolic)
    references = exact_references(backward, problem, symbolic)
    kind = np.dtype(problem.dtype).type

    def rounded(row):
        return tuple(float(kind(float(v))) for v in row)

    trace = BackwardTrace(
        values={name: rounded(v) for name, v in values.items()},
        adjoints={
            name: rounded(references[name].values) if name in references else None
            for name in values
        },
        recorded_ops=("Mul", "AddV2", "Sub", "Square", "Mean"),
    )
    script = TapeResult(
        loss=trace.values["loss"][0],
        gradients={name: trace.adjoints[name][0] for name in ("W", "b")},
        tensorflow_version="none",
    )
    return backward, references, trace, script


def _formulas(symbolic):
    return {name: d.result for name, d in symbolic.derivations.items()}


def _edge_facts(problem, symbolic, where: str):
    """Backward facts with every checked node's adjoint at sample 1 (and at the last
    sample) moved to `where` of its own tolerance, all nodes at once (each node's
    check reads only its own adjoints)."""
    backward, references, trace, script = _perfect(problem, symbolic)
    facts = build_backward(problem, symbolic, _formulas(symbolic), trace, script, backward)
    adjoints = dict(trace.adjoints)
    moved = {}
    for node in facts.checked:
        row = list(adjoints[node.name])
        for index in {0, len(row) - 1}:
            check = node.check.checks[index]
            tolerance = Fraction(check.tolerance)
            if tolerance == 0:
                continue
            exact = references[node.name].values[index]
            row[index] = edge_tapes(exact, tolerance)[where]
            moved.setdefault(node.name, set()).add(index)
        adjoints[node.name] = tuple(row)
    trace = dataclasses.replace(trace, adjoints=adjoints)
    return build_backward(problem, symbolic, _formulas(symbolic), trace, script, backward), moved


EDGES = ["inside above", "inside below", "beyond above", "beyond below"]


@pytest.mark.parametrize("data", ["seed", "tf-examples"])
@pytest.mark.parametrize("where", EDGES)
def test_backward_checks_sit_at_their_bound(symbolic, data, where):
    problem = make_problem(BUILTIN_DATASETS[data], init=SINGLE_INIT)
    facts, moved = _edge_facts(problem, symbolic, where)
    assert facts.exact
    # Every node with a rounding in its adjoint has been moved (dL/dL = 1 is exact, and
    # so is dL/dsquare = 1/n for n a power of two).
    assert {"W", "b", "Wx", "prediction", "residual"} <= set(moved)
    for node in facts.checked:
        if node.name not in moved:
            continue
        if where.startswith("inside"):
            assert node.check.ok, node.name
        else:
            assert node.check.failed == len(moved[node.name]), node.name
            assert [i for i, c in enumerate(node.check.checks) if not c.ok] == sorted(
                moved[node.name]
            )


@pytest.mark.parametrize("where", EDGES)
def test_backward_checks_on_the_float64_path_sit_at_their_bound(symbolic, monkeypatch, where):
    monkeypatch.setattr(reference_module, "EXACT_LIMIT", 0)  # float64 references, NumPy verdicts
    rng = np.random.default_rng(3)
    x = rng.uniform(-10, 10, 40)
    dataset = Dataset("random", tuple(x.tolist()), tuple((2 * x + 1).tolist()), "test")
    problem = make_problem(dataset, init={"W": 0.2, "b": 0.7})
    backward, _, trace, script = _perfect(problem, symbolic)
    samples = Samples.of(problem.x, problem.y)
    references = fast_references(backward, problem, symbolic, samples)
    facts = build_backward(problem, symbolic, _formulas(symbolic), trace, script, backward)
    assert not facts.exact and facts.ok
    adjoints = dict(trace.adjoints)
    moved = []
    for node in facts.checked:
        check = node.check.checks[-1]  # the last sample (every check is kept at n = 40)
        if check.tolerance == 0:
            continue
        found = references[node.name]
        last = len(node.check.checks) - 1
        exact = found.at(last) if isinstance(found, FloatReference) else found.values[last]
        row = np.array(adjoints[node.name], dtype=np.float64)
        row[-1] = edge_tapes(exact, Fraction(check.tolerance))[where]
        adjoints[node.name] = row
        moved.append(node.name)
    trace = dataclasses.replace(trace, adjoints=adjoints)
    facts = build_backward(problem, symbolic, _formulas(symbolic), trace, script, backward)
    assert {"W", "b", "Wx", "prediction", "residual", "square"} <= set(moved)
    for node in facts.checked:
        if node.name in moved:
            inside = where.startswith("inside")
            assert node.check.failed == (0 if inside else 1), node.name
            assert node.check.checks[-1].ok == inside, node.name


# --- the SGD update: training (k = 3) and handouts (k = 2) -----------------------------


def _training_update_checks(symbolic, moved: dict[str, float] | None = None):
    """The first update of a float64 run (the optimizer still holds eta in float32), with
    the tape's W_1 and b_1 replaced by `moved`; the checks of the update rule."""
    from derive.report.training import check_training, reference_trace

    problem = make_problem(
        BUILTIN_DATASETS["seed"], init=SINGLE_INIT, dtype="float64", training=Training(steps=1)
    )
    trace = reference_trace(problem, symbolic, _formulas(symbolic))
    if moved:
        parameters = {name: np.array(values) for name, values in trace.parameters.items()}
        for name, value in moved.items():
            parameters[name][1] = value
        trace = dataclasses.replace(trace, parameters=parameters)
    facts = check_training(problem, symbolic, _formulas(symbolic), trace)
    return problem, trace, {rule.parameter: rule.first_check for rule in facts.rules}


def test_training_update_check_sits_at_gamma_3(symbolic):
    """theta_1 = fl(theta_0 - fl(eta32 g_0)): eta rounded to float32, the product, the
    difference -- three roundings of at most u = 2^-24, so the tolerance is
    gamma_3 (|theta_0| + |eta g_0|), stated here independently of derive.report.training."""
    problem, trace, checks = _training_update_checks(symbolic)
    eta = Fraction(problem.training.learning_rate)
    edges = {}
    for name, check in checks.items():
        assert check.ok
        theta = Fraction(float(trace.parameters[name][0]))
        change = eta * Fraction(float(trace.gradients[name][0]))
        reference = theta - change
        assert Fraction(check.reference) == Fraction(float(reference))
        assert check.bound.underflow < 2.0**-60 * check.tolerance  # no tiny numbers here
        tolerance = gamma(3) * (abs(theta) + abs(change)) + Fraction(check.bound.underflow)
        edges[name] = edge_tapes(reference, tolerance)
    for where in EDGES:
        _, _, checks = _training_update_checks(
            symbolic, {name: tapes[where] for name, tapes in edges.items()}
        )
        for name, check in checks.items():
            assert check.ok == where.startswith("inside"), (where, name, check)


def test_handouts_update_check_sits_at_gamma_2_plus_what_the_gradient_carries(
    symbolic, monkeypatch
):
    """The key's W_1 is theta_0 - eta g at the exact gradient g and eta = 1/100 exactly;
    the tape's is fl(theta_0 - fl(eta32 g_tape)). Unlike the training check (reference
    theta_0 - eta g_tape, eta the float64 rate, its rounding to float32 one of three
    roundings), the key carries eta's rounding as the exact term |eta32 - eta| |g_tape|
    and the gradient's own error as eta times its tolerance, leaving two roundings (the
    product and the difference): gamma_2 (|theta_0| + eta32 |g_tape|) + those terms."""
    import derive.handouts.keys as handouts_module
    from derive.handouts.facts import LEARNING_RATE
    from derive.handouts.keys import check_key
    from derive.handouts.sheets import build_handouts

    sheet = build_handouts(1, class_seed=11, tape=emulated_tape).sheets[0]
    tape = emulated_tape(sheet.problem)
    names = list(sheet.problem.initial.values)
    entries = check_key(symbolic, sheet, tape)
    gradient_checks = {name: entries[1 + j].check for j, name in enumerate(names)}
    updates = dict(zip(names, entries[1 + len(names) :], strict=True))
    eta32 = Fraction(float(np.float32(float(LEARNING_RATE))))
    edges = {}
    for name, entry in updates.items():
        assert entry.ok
        theta = Fraction(sheet.problem.initial.values[name])
        g_tape = Fraction(tape.gradients[name])
        reference = sheet.values.updated[name]
        assert reference == theta - LEARNING_RATE * sheet.values.gradients[name]
        underflow = Fraction(entry.check.bound.underflow)
        assert underflow < Fraction(2.0**-60) * Fraction(entry.check.tolerance)
        tolerance = (
            gamma(2) * (abs(theta) + eta32 * abs(g_tape))
            + LEARNING_RATE * Fraction(gradient_checks[name].tolerance)
            + abs(eta32 - LEARNING_RATE) * abs(g_tape)
            + underflow
        )
        edges[float(theta)] = edge_tapes(reference, tolerance)
    for where in EDGES:

        def at_edge(value, gradient, dtype, where=where):
            return edges[value][where]

        monkeypatch.setattr(handouts_module, "_sgd_on_tape", at_edge)
        entries = check_key(symbolic, sheet, tape)
        for name, entry in zip(names, entries[1 + len(names) :], strict=True):
            assert entry.check.ok == where.startswith("inside"), (where, name, entry.check)


# --- what the per-sample table shows ----------------------------------------------------


def _close(shown: float, exact: Fraction) -> bool:
    """The float64 nearest the exact value (what the table holds)."""
    return abs(Fraction(shown) - exact) <= abs(exact) * Fraction(1, 2**53)


def _many_samples() -> Dataset:
    rng = np.random.default_rng(5)
    x = np.round(rng.uniform(-5, 5, 25), 2)
    return Dataset("many", tuple(x.tolist()), tuple(np.round(3 - x, 1).tolist()), "test")


@pytest.mark.parametrize("data", ["single", "seed", "tf-examples", "many"])
def test_every_per_sample_row_is_the_data_and_its_own_arithmetic(data):
    dataset = _many_samples() if data == "many" else BUILTIN_DATASETS[data]
    problem = make_problem(dataset, init=SINGLE_INIT)
    report = explain(problem, tape=emulated_tape, backward=False)
    n = problem.n
    w, b = (Fraction(problem.initial.values[name]) for name in ("W", "b"))
    xs, ys = [Fraction(v) for v in problem.x], [Fraction(v) for v in problem.y]
    assert all(Fraction(float(np.float32(v))) == v for v in (*xs, *ys))  # as the tape used them
    exact_shares = {"W": [], "b": []}
    for x, y in zip(xs, ys, strict=True):
        r = w * x + b - y
        exact_shares["W"].append(2 * r * x)
        exact_shares["b"].append(2 * r)
    document = report.to_dict()["initial"]["per_sample"]
    rows = [row for row in report.samples.rows if row is not None]
    assert [row.i for row in rows] == [entry["i"] for entry in document]
    assert len(rows) == min(n, 10 if n > 20 else n) and report.samples.elided == n - len(rows)
    for row, entry in zip(rows, document, strict=True):
        k = row.i - 1
        x, y = xs[k], ys[k]
        prediction = w * x + b
        r = prediction - y
        expected = {
            "x": x,
            "y": y,
            "prediction": prediction,
            "residual": r,
            "loss_term": r * r,
            "W": 2 * r * x,
            "b": 2 * r,
        }
        shown = {
            "x": row.x[0],
            "y": row.y,
            "prediction": row.prediction,
            "residual": row.residual,
            "loss_term": row.loss_term,
            **row.shares,
        }
        written = {key: entry[key] for key in ("x", "y", "prediction", "residual", "loss_term")}
        written |= entry["shares"]
        assert shown == written, row.i  # the JSON is the table
        assert set(shown) == set(expected)
        for key, value in expected.items():
            assert _close(shown[key], value), (row.i, key, shown[key], float(value))
    # The shares' mean is the gradient, and the squares' mean the loss.
    loss_check, *gradient_checks = report.checks
    assert Fraction(report.samples.mean_loss_term) == Fraction(float(loss_check.reference))
    exact_loss = sum(((w * x + b - y) ** 2 for x, y in zip(xs, ys, strict=True)), Fraction(0)) / n
    assert _close(loss_check.reference, exact_loss)
    for check, name in zip(gradient_checks, ("W", "b"), strict=True):
        gradient = sum(exact_shares[name], Fraction(0)) / n
        assert _close(check.reference, gradient) and _close(
            report.samples.mean_shares[name], gradient
        )
        if not report.samples.elided:  # every row shown: their mean is the gradient
            mean = sum((Fraction(row.shares[name]) for row in rows), Fraction(0)) / n
            spread = sum((abs(s) for s in exact_shares[name]), Fraction(0)) / n
            assert abs(mean - gradient) <= spread * Fraction(1, 2**53)


# --- what the printed key shows ---------------------------------------------------------

KEY_BOX = re.compile(r'<span class="box(?: wide)?">([^<]*)</span>')


def _key_boxes_expected(sheet) -> list[Fraction]:
    """The key's values in the order of the page's boxes: each sample's residual, square
    and shares, then the loss and the gradients, then per parameter the SGD step's
    gradient and its result -- all worked from the printed decimals."""
    hand = sheet.hand
    names = list(sheet.share_latex)
    values: list[Fraction] = []
    for work in hand.samples:
        values += [work.residual, work.square, *(work.shares[name] for name in names)]
    values += [hand.loss, *(hand.gradients[name] for name in names)]
    for name in sheet.init_given:
        values += [hand.gradients[name], hand.updated[name]]
    return values


def _at_digits(text: str, exact: Fraction, digits: int) -> bool:
    """`text` is `exact` rounded to `digits` significant digits (either way at a tie)."""
    shown = Fraction(Decimal(text))
    if exact == 0:
        return shown == 0
    exponent = math.floor(math.log10(abs(exact)))
    if abs(exact) < Fraction(10) ** exponent:  # log10 rounded up at a power of ten
        exponent -= 1
    unit = Fraction(10) ** (exponent - digits + 1)  # one unit in the last printed digit
    return (shown / unit).denominator == 1 and abs(shown - exact) <= unit / 2


def test_every_key_box_is_the_key_value_at_the_printed_digits():
    from derive.handouts.facts import KEY_DIGITS
    from derive.handouts.files import document_html
    from derive.handouts.sheets import build_handouts

    handouts = build_handouts(4, class_seed=11, tape=emulated_tape)
    html = document_html(handouts, filled=True)
    pages = html.split('<section class="page')[1:]
    assert len(pages) == len(handouts.sheets)
    assert f"{KEY_DIGITS} significant digits" in html  # what the key says it prints
    checked = 0
    for page, sheet in zip(pages, handouts.sheets, strict=True):
        boxes = KEY_BOX.findall(page)
        expected = _key_boxes_expected(sheet)
        assert len(boxes) == len(expected)
        for text, exact in zip(boxes, expected, strict=True):
            assert _at_digits(text, exact, KEY_DIGITS), (sheet.spec.identifier, text, exact)
            checked += Decimal(text).normalize().as_tuple().digits.__len__() == KEY_DIGITS
            # trailing zeros kept: every box shows all its digits (0.0860000, not 0.086)
            assert exact == 0 or len(Decimal(text).as_tuple().digits) == KEY_DIGITS, text
    assert checked >= 10  # values that need every digit: one digit fewer would show
    # The exercise sheet prints the same boxes, empty.
    blank = document_html(handouts, filled=False).split('<section class="page')[1:]
    for page, sheet in zip(blank, handouts.sheets, strict=True):
        assert KEY_BOX.findall(page) == [""] * len(_key_boxes_expected(sheet))


# --- the command line's verdict, without TensorFlow -------------------------------------


class _NoJob:
    def close(self) -> None:
        pass


@pytest.fixture
def emulated_command_line(monkeypatch):
    """`main()` on the float32 emulation instead of the training process: the initial
    check only (no training, no backward pass), as tests/test_cli.py does."""
    from derive.render.outputs import render_all

    def run(job, problem, wrong_derivative, formats, progress, *, lang="en", backward=True):
        report = explain(problem, wrong_derivative, tape=emulated_tape, backward=False)
        return report, render_all(report, formats, lang=lang)

    monkeypatch.setattr("derive.cli.background.TrainingJob", _NoJob)
    monkeypatch.setattr("derive.cli.pipeline.run", run)


@pytest.mark.parametrize("wrong", [None, "drop-factor-2"])
def test_the_exit_code_and_the_json_follow_the_verdict(
    tmp_path, capsys, emulated_command_line, wrong
):
    from derive.cli.main import main

    arguments = ["report", "--out", str(tmp_path), "--seed", "4", "--format", "json", "--quiet"]
    code = main(arguments + (["--wrong-derivative", wrong] if wrong else []))
    document = json.loads((tmp_path / "seed.json").read_text())
    initial = document["initial"]
    assert initial["loss"]["ok"]  # the loss is never made wrong
    if wrong is None:
        assert code == 0
        assert document["ok"] is True
        assert all(check["ok"] is True for check in initial["gradients"].values())
    else:
        assert code == 1
        assert document["ok"] is False
        assert document["gradient_formula"] == wrong
        assert initial["gradients"]["W"]["ok"] is False and initial["gradients"]["b"]["ok"] is False
    assert capsys.readouterr().out == ""


# --- k, stated here independently ------------------------------------------------------
#
# k = d + t: d, the depth of the tape's sum over the samples (n - 1 when the order of
# additions is not known; TensorFlow's CPU order otherwise), and t, one term's roundings:
#
#   r_i = fl(fl(fl(W x_i) + b) - y_i)       3
#   L     = fl(sum fl(r_i r_i)) / n         d + 3 + 3 + 1 + D
#   dL/db = sum fl(fl(1/n) fl(2 r_i))       d + D + 3 + 1    (2 r_i: 3, exact doubling)
#   dL/dW = sum fl(that * x_i)              d + D + 3 + 1 + 1
#
# with D the division by n: none for a power of two, else one (two where float32 cannot
# hold n). The tolerance is gamma_k M, M the same computation on absolute values.


def _division(n: int) -> int:
    return 0 if n & (n - 1) == 0 else 1


def _stated_k(n: int, depth: int) -> dict[str, int]:
    d = _division(n)
    return {"L": depth + 7 + d, "b": depth + d + 4, "W": depth + d + 5}


def _magnitudes(problem) -> dict[str, Fraction]:
    w, b = (abs(Fraction(problem.initial.values[name])) for name in ("W", "b"))
    n = problem.n
    rows = [(abs(Fraction(x)), w * abs(Fraction(x)) + b + abs(Fraction(y))) for x, y in
            zip(problem.x, problem.y, strict=True)]  # fmt: skip
    return {
        "L": sum((m * m for _, m in rows), Fraction(0)) / n,
        "b": sum((2 * m for _, m in rows), Fraction(0)) / n,
        "W": sum((2 * x * m for x, m in rows), Fraction(0)) / n,
    }


def _is_gamma_k_times(tolerance: float, k: int, magnitude: Fraction) -> bool:
    exact = gamma(k) * magnitude
    return abs(Fraction(tolerance) - exact) <= exact * Fraction(1, 2**40)


def _known_order(threads: int = 1):
    from derive.tape.order import Order

    return Order(
        mode="eager", threads=threads, tensorflow_version="2.21.0", machine="x86_64",
        confirmed=True,
    )  # fmt: skip


# Depths of TensorFlow's CPU sum (float32, AVX: packets of 8 lanes), worked by hand: 17
# terms are two packets (0 + the first is exact, + the second: 1), the lanes' halving tree
# (3), then + the one term left over (1): 5. 100 terms: three rounds of four packets
# (2 in each lane, + 3 joining the four accumulators), no packet left, the tree (3), + the
# tail of 4 terms (3 in sequence; 1 to join): 9.
KNOWN_DEPTHS = {1: 0, 2: 1, 17: 5, 100: 9}


def _dataset(n: int) -> Dataset:
    rng = np.random.default_rng(n)
    x = rng.uniform(-4, 4, n)
    return Dataset(f"n{n}", tuple(x.tolist()), tuple((1.5 * x - 0.5).tolist()), "test")


@pytest.mark.parametrize("n", [1, 2, 3, 17, 100])
@pytest.mark.parametrize("known", [False, True])
def test_k_of_the_loss_and_the_gradients(n, known):
    problem = make_problem(_dataset(n), init=SINGLE_INIT)

    def tape(problem):
        result = emulated_tape(problem)
        return dataclasses.replace(result, order=_known_order()) if known else result

    report = explain(problem, tape=tape, backward=False)
    depth = KNOWN_DEPTHS[n] if known and n in KNOWN_DEPTHS else n - 1
    if known and n == 3:
        depth = 2  # a tail of three terms, added in sequence
    stated, magnitudes = _stated_k(n, depth), _magnitudes(problem)
    for check, key in zip(report.checks, ("L", "W", "b"), strict=True):
        assert check.bound.underflow < 2.0**-60 * check.tolerance  # gamma_k M alone
        assert _is_gamma_k_times(check.tolerance, stated[key], magnitudes[key]), (
            key, check.bound.roundings, stated[key],
        )  # fmt: skip


@pytest.mark.parametrize("n", [1, 2, 17, 100])
@pytest.mark.parametrize("known", [False, True])
def test_k_of_every_backward_node(symbolic, n, known):
    """The adjoints as the tape forms them: dL/dL = 1 (exact), dL/dsquare_i = 1/n (D),
    dL/dr_i = 1/n * 2 r_i (D + 3 + 1), passed on unchanged to the prediction and W x_i,
    dL/db = sum of those (+ d), dL/dW = sum of x_i times them (+ 1 + d)."""
    problem = make_problem(_dataset(n), init=SINGLE_INIT)
    backward, _, trace, script = _perfect(problem, symbolic)
    order = _known_order() if known else None
    facts = build_backward(
        problem, symbolic, _formulas(symbolic), trace, script, backward, order=order
    )
    depth = KNOWN_DEPTHS[n] if known else n - 1
    d = _division(n)
    stated = {"loss": 0, "square": d, "residual": d + 4, "prediction": d + 4, "Wx": d + 4,
              "b": depth + d + 4, "W": depth + d + 5}  # fmt: skip
    w, b = (abs(Fraction(problem.initial.values[name])) for name in ("W", "b"))
    per_sample = [2 * (w * abs(Fraction(x)) + b + abs(Fraction(y))) / n
                  for x, y in zip(problem.x, problem.y, strict=True)]  # fmt: skip
    magnitudes = {
        "loss": [Fraction(1)],
        "square": [Fraction(1, n)] * n,
        "residual": per_sample,
        "prediction": per_sample,
        "Wx": per_sample,
        "b": [sum(per_sample, Fraction(0))],
        "W": [sum((abs(Fraction(x)) * m for x, m in zip(problem.x, per_sample, strict=True)),
                  Fraction(0))],
    }  # fmt: skip
    assert {node.name for node in facts.checked} == set(stated)
    for node in facts.checked:
        assert node.check.ok, node.name
        for index, check in zip(node.check.indices, node.check.checks, strict=True):
            assert check.bound.underflow < 2.0**-60 * max(check.tolerance, 2.0**-1000)
            assert _is_gamma_k_times(check.tolerance, stated[node.name],
                                     magnitudes[node.name][index]), node.name  # fmt: skip


def test_k_of_the_handout_keys_is_the_reports(symbolic):
    """A key's loss and gradients are checked with the report's k: on a tape that does
    not say how it added up, the order-free depth n - 1 plus one term's roundings."""
    from derive.handouts.sheets import build_handouts

    for sheet in build_handouts(3, class_seed=5, samples=3, tape=emulated_tape).sheets:
        problem = sheet.problem
        magnitudes, stated = _magnitudes(problem), _stated_k(problem.n, problem.n - 1)
        for entry, key in zip(sheet.checks, ("L", "W", "b"), strict=False):
            assert entry.check.bound.underflow < 2.0**-60 * entry.check.tolerance
            assert _is_gamma_k_times(entry.check.tolerance, stated[key], magnitudes[key]), key
