"""The backward pass: symbolic adjoints, exact references, checks, drawing, JSON, and the tape.

Fast tests feed the facts a stand-in for the tape: the exact values and adjoints rounded
to float32 (what a perfect float32 tape would give). Tests marked `tensorflow` use the
real tape.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from conftest import SINGLE_INIT, SINGLE_INIT_FLAG, render_backward_partial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive.common.numbers import latex_number
from derive.exact.adjoint_values import exact_forward_values, exact_references
from derive.exact.roundings import rounding_counts
from derive.models.ops import Node
from derive.models.registry import get_loss, get_model
from derive.problem.problem import BUILTIN_DATASETS, Dataset, make_problem
from derive.render.graph import draw, layout
from derive.render.mathsvg import latex_to_svg
from derive.report.backward import build_backward
from derive.report.backward_facts import BackwardFacts
from derive.report.todict import backward_to_list
from derive.symbolic.adjoints import derive_adjoints, direct_adjoint, graph_of, matches_definition
from derive.symbolic.derivation import X_I, N, build_symbolic, wrong_formula
from derive.tape.backward import BackwardTrace
from derive.tape.gradient import TapeResult

RECORDED = ("Mul", "AddV2", "Sub", "Square", "Mean")

# The watched nodes, in forward order: the parameters, then the ops.
CHECKED_NODES = ["W", "b", "Wx", "prediction", "residual", "square", "loss"]


def _rounded(value: Fraction, dtype: str) -> float:
    return float(np.asarray(float(value), dtype=dtype))


def _problem(data: str | Dataset = "seed", init=SINGLE_INIT, dtype="float32"):
    dataset = BUILTIN_DATASETS[data] if isinstance(data, str) else data
    return make_problem(dataset, init=init, dtype=dtype)


def _formulas(symbolic):
    return {name: d.result for name, d in symbolic.derivations.items()}


def perfect_tape(problem, symbolic) -> tuple[BackwardTrace, TapeResult]:
    """What a tape without any error beyond the last rounding to its dtype would report."""
    backward = derive_adjoints(graph_of(symbolic.model, symbolic.loss_definition), symbolic)
    values = exact_forward_values(backward, problem, symbolic)
    references = exact_references(backward, problem, symbolic)

    def rounded(values):
        return tuple(_rounded(v, problem.dtype) for v in values)

    trace = BackwardTrace(
        values={name: rounded(v) for name, v in values.items()},
        adjoints={
            name: rounded(references[name].values) if name in references else None
            for name in values
        },
        recorded_ops=RECORDED,
    )
    script = TapeResult(
        loss=trace.values["loss"][0],
        gradients={name: trace.adjoints[name][0] for name in ("W", "b")},
        tensorflow_version="none",
    )
    return trace, script


def facts_for(problem, symbolic, **changes) -> BackwardFacts:
    trace, script = perfect_tape(problem, symbolic)
    if changes:
        trace = dataclasses.replace(trace, **changes)
    return build_backward(problem, symbolic, _formulas(symbolic), trace, script)


@pytest.fixture(scope="module")
def backward(symbolic):
    return derive_adjoints(graph_of(symbolic.model, symbolic.loss_definition), symbolic)


# --- the graph and the symbolic adjoints ------------------------------------------------


def test_graph_is_the_scripts_ops_in_order(symbolic):
    graph = graph_of(symbolic.model, symbolic.loss_definition)
    assert [v.name for v in graph] == [
        "W",
        "b",
        "x",
        "y",
        "Wx",
        "prediction",
        "residual",
        "square",
        "loss",
    ]
    assert [v.op.tf_type for v in graph if v.op] == list(RECORDED)
    assert [v.per_sample for v in graph if v.kind == "op"] == [True, True, True, True, False]
    assert not any(v.watched for v in graph if v.kind == "data")


def test_adjoints_are_the_chain_rule_factors(backward, symbolic):
    r = backward.symbols["residual"]
    assert backward.adjoints["loss"] == 1
    assert backward.adjoints["square"] == 1 / N
    # The example: the adjoint at the residual is 2 r_i / n.
    for name in ("residual", "prediction", "Wx", "b"):
        assert sp.simplify(backward.adjoints[name] - 2 * r / N) == 0
    assert sp.simplify(backward.adjoints["W"] - 2 * r * X_I / N) == 0
    assert backward.broadcast == {"W", "b"}


def test_reverse_mode_equals_direct_differentiation(backward, symbolic):
    for name, adjoint in backward.adjoints.items():
        difference = backward.leaf_form(adjoint) - direct_adjoint(backward, symbolic, name)
        assert sp.simplify(difference) == 0, name


def test_graph_must_compose_to_the_model(backward, symbolic):
    assert matches_definition(backward, symbolic)
    model = get_model("linear")
    wrong = dataclasses.replace(
        model,
        graph=(model.graph[0], Node("prediction", "subtract", ("Wx", "b"), r"\hat{y}_{i}", "ŷ")),
    )
    other = build_symbolic(wrong, get_loss("mse"))
    wrong_graph = graph_of(wrong, other.loss_definition)
    assert not matches_definition(derive_adjoints(wrong_graph, other), other)
    # (y - y_hat)^2 is the same loss as (y_hat - y)^2: that graph does match.
    loss = get_loss("mse")
    swapped = dataclasses.replace(
        loss,
        graph=(Node("residual", "subtract", ("y", "prediction"), "r_{i}", "r"), *loss.graph[1:]),
    )
    other = build_symbolic(get_model("linear"), swapped)
    assert matches_definition(derive_adjoints(graph_of(other.model, swapped), other), other)


def test_broadcast_sums_equal_the_derivation_and_catch_a_wrong_one(symbolic):
    problem = _problem("seed")
    facts = facts_for(problem, symbolic)
    assert [s.parameter for s in facts.sums] == ["b", "W"]  # the order the tape reaches them
    assert all(s.meets_derivation for s in facts.sums)
    trace, script = perfect_tape(problem, symbolic)
    wrong = {n: wrong_formula(f, "drop-mean") for n, f in _formulas(symbolic).items()}
    facts = build_backward(problem, symbolic, wrong, trace, script)
    assert not any(s.meets_derivation for s in facts.sums)
    assert not facts.ok


def test_rounding_counts(backward):
    # r_i carries 3 roundings (a product, two sums); the mean's 1/n is exact for n = 1, 2.
    assert rounding_counts(backward, 1, "float32") == {
        "loss": 0,
        "square": 0,
        "residual": 4,
        "prediction": 4,
        "Wx": 4,
        "b": 4,
        "W": 5,
    }
    counts = rounding_counts(backward, 17, "float32")
    assert counts["square"] == 1  # 1/17 is rounded
    assert counts["residual"] == 5
    assert counts["b"] == 5 + 16 and counts["W"] == 5 + 1 + 16


# --- checks: they pass for a perfect tape, and catch a wrong adjoint ---------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("data", ["single", "seed", "tf-examples"])
def test_perfect_tape_passes(symbolic, data, dtype):
    facts = facts_for(_problem(data, dtype=dtype), symbolic)
    assert facts.ok
    assert facts.ops_match and facts.matches_definition and facts.replay_matches
    assert [n.name for n in facts.checked] == CHECKED_NODES


def test_single_sample_acceptance_numbers(symbolic):
    facts = facts_for(_problem("single"), symbolic)
    residual = facts.node("residual")
    assert residual.check.checks[0].reference == pytest.approx(-0.42080993, abs=1e-8)
    assert facts.node("loss").adjoints == (1.0,)
    x = facts.node("x").values[0]
    assert facts.node("W").check.checks[0].reference == pytest.approx(
        x * residual.check.checks[0].reference, rel=1e-15
    )
    assert facts.node("b").check.checks[0].reference == residual.check.checks[0].reference


def test_a_corrupted_tape_adjoint_is_flagged(symbolic):
    problem = _problem("seed")
    trace, _ = perfect_tape(problem, symbolic)
    adjoints = dict(trace.adjoints)
    r1, r2 = adjoints["residual"]
    adjoints["residual"] = (r1 * (1 + 2**-12), r2)  # about 2^12 ULPs off at sample 1
    facts = facts_for(problem, symbolic, adjoints=adjoints)
    residual = facts.node("residual")
    assert [c.ok for c in residual.check.checks] == [False, True]
    assert not facts.ok
    assert all(node.ok for node in facts.checked if node.name != "residual")


def test_a_dropped_factor_2_in_the_reference_is_flagged(symbolic, backward):
    problem = _problem("seed")
    trace, script = perfect_tape(problem, symbolic)
    adjoints = dict(backward.adjoints)
    adjoints["residual"] = adjoints["residual"] / 2  # forgets the power rule's 2
    wrong = dataclasses.replace(backward, adjoints=adjoints)
    facts = build_backward(problem, symbolic, _formulas(symbolic), trace, script, wrong)
    residual = facts.node("residual")
    assert not residual.expected_verified
    assert not any(c.ok for c in residual.check.checks)
    assert not facts.ok


def test_the_seed_adjoint_must_be_exactly_one(symbolic):
    problem = _problem("single")
    trace, _ = perfect_tape(problem, symbolic)
    adjoints = dict(trace.adjoints) | {"loss": (1.0 + 2**-23,)}
    facts = facts_for(problem, symbolic, adjoints=adjoints)
    check = facts.node("loss").check
    assert check.roundings == 0 and check.checks[0].tolerance == 0
    assert not check.ok


# Values are 0 or well above float32's underflow threshold: gamma_k * M models relative
# rounding errors only, and near underflow (subnormal results) that model does not hold.
_NORMAL = st.floats(-50, 50, width=32).filter(lambda v: v == 0 or abs(v) > 1e-6)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    samples=st.lists(st.tuples(_NORMAL, _NORMAL), min_size=1, max_size=20),
    w=_NORMAL.filter(lambda v: abs(v) <= 5),
    b=_NORMAL.filter(lambda v: abs(v) <= 5),
)
def test_checks_pass_for_a_perfect_tape_and_fail_beyond_the_bound(symbolic, samples, w, b):
    dataset = Dataset("random", tuple(s[0] for s in samples), tuple(s[1] for s in samples), "t")
    problem = _problem(dataset, {"W": w, "b": b})
    facts = facts_for(problem, symbolic)
    assert all(node.check.ok for node in facts.checked)
    # Moving an adjoint by twice its tolerance (and at least one ULP) must fail.
    check = facts.node("b").check.checks[0]
    moved = check.tape + max(2 * check.tolerance, 1e-30) * (1 if check.tape >= 0 else -1)
    moved = float(np.nextafter(np.float32(moved), np.float32(math.copysign(np.inf, moved))))
    trace, _ = perfect_tape(problem, symbolic)
    adjoints = dict(trace.adjoints) | {"b": (moved,)}
    assert not facts_for(problem, symbolic, adjoints=adjoints).node("b").check.ok


# --- what the report shows ---------------------------------------------------------------


def _latex_strings(facts: BackwardFacts) -> list[str]:
    strings = []
    for node in facts.nodes:
        strings += [node.symbol, node.definition, node.expected or "1"]
        strings.append(rf"\frac{{\partial L}}{{\partial {node.symbol}}}")
    for step in facts.steps:
        for p in step.propagations:
            strings += [p.rule, *(line for line in p.lines if line)] if p.watched else []
    for s in facts.sums:
        strings += [s.general, s.written_out, *s.with_numbers, s.derivation]
    return strings


@pytest.mark.parametrize("data", ["single", "seed", "tf-examples"])
def test_every_formula_renders(symbolic, data):
    for text in _latex_strings(facts_for(_problem(data), symbolic)):
        assert "<svg" in latex_to_svg(text)


def test_two_samples_show_b_as_a_sum_of_two_adjoints(symbolic):
    facts = facts_for(_problem("seed"), symbolic)
    (b_sum,) = [s for s in facts.sums if s.parameter == "b"]
    assert b_sum.terms == 2
    assert r"\frac{2 r_{1}}{2}" in b_sum.written_out and r"\frac{2 r_{2}}{2}" in b_sum.written_out
    a1, a2 = facts.node("prediction").adjoints
    assert b_sum.with_numbers[0].count("+") == 1
    assert str(a1)[:8] in b_sum.with_numbers[0] and str(a2)[:8] in b_sum.with_numbers[0]
    # the tape's float32 sum is rounded: its result follows "approx", not "="
    assert r"\approx" in b_sum.with_numbers[-1] and "} =" not in b_sum.with_numbers[-1]


def test_residual_rule_is_written_with_numbers(symbolic):
    facts = facts_for(_problem("single"), symbolic)
    (square,) = [s for s in facts.steps if s.op == "square"]
    (to_residual,) = square.propagations
    assert to_residual.rule == (
        r"\frac{\partial L}{\partial r_{i}} = 2 r_{i} \cdot \frac{\partial L}{\partial r_{i}^{2}}"
    )
    (adjoint,) = facts.node("residual").adjoints
    # the tape's product is rounded: "approx" its float32 result, not "="
    assert to_residual.lines[0].endswith(rf"\approx {latex_number(adjoint)}")
    start = r"\frac{\partial L}{\partial r_{1}} = 2 \cdot \left({-0.21"
    assert to_residual.lines[0].startswith(start)
    assert [s.op for s in facts.steps] == ["mean", "square", "subtract", "add", "multiply"]


def test_long_sums_are_broken_into_lines(symbolic):
    facts = facts_for(_problem("tf-examples"), symbolic)
    (w_sum,) = [s for s in facts.sums if s.parameter == "W"]
    assert len(w_sum.with_numbers) > 2
    assert all(len(line) < 120 for line in w_sum.with_numbers)


def test_json_shape(symbolic):
    facts = facts_for(_problem("seed"), symbolic)
    nodes = backward_to_list(facts)
    assert [n["name"] for n in nodes] == CHECKED_NODES
    for node in nodes:
        assert set(node) >= {"name", "op", "inputs", "value", "adjoint", "check"}
        width = 2 if node["name"] in {"Wx", "prediction", "residual", "square"} else 1
        assert len(node["value"]) == len(node["adjoint"]) == width
        check = node["check"]
        for key in ("reference", "tape", "ulps", "tolerance"):
            assert len(check[key]) == width
        assert check["ok"] is True
    assert nodes[4]["inputs"] == ["prediction", "y"]
    json.dumps(nodes, allow_nan=False)


# --- the drawing ---------------------------------------------------------------------------


def _overlap(a, b) -> bool:
    return not (
        a.x + a.width <= b.x
        or b.x + b.width <= a.x
        or a.y + a.height <= b.y
        or b.y + b.height <= a.y
    )


@pytest.mark.parametrize("n", [1, 2, 3, 4, 17, 20])
def test_graph_layout_has_no_overlaps_and_fits(symbolic, n):
    data = BUILTIN_DATASETS["tf-examples"]
    dataset = Dataset("part", (data.x * 2)[:n], (data.y * 2)[:n], "test")
    facts = facts_for(_problem(dataset), symbolic)
    placed, width, height = layout(facts)
    boxes = list(placed.values())
    for i, a in enumerate(boxes):
        assert a.x >= 0 and a.x + a.width <= width and a.y + a.height <= height
        for b in boxes[i + 1 :]:
            assert not _overlap(a, b), (a.box.node.name, b.box.node.name)
    rows = max(len(p.box.rows) for p in boxes)
    assert rows == min(n, 3)  # beyond three samples: min, max and the sum


@pytest.mark.parametrize("data", ["single", "seed", "tf-examples"])
def test_graph_svg_is_plain_deterministic_markup(symbolic, data):
    facts = facts_for(_problem(data), symbolic)
    svg = draw(facts)
    assert svg == draw(facts)
    root = ET.fromstring(svg)
    tags = {element.tag.split("}")[1] for element in root.iter()}
    assert tags <= {"svg", "title", "defs", "marker", "path", "rect", "line", "text"}
    texts = [element.text for element in root.iter("{http://www.w3.org/2000/svg}text")]
    for label in ("W", "b", "x", "y", "W·x", "ŷ", "r", "r²", "L"):
        assert label in texts
    assert "href" not in svg and "script" not in svg


def test_backward_partial_renders_without_tensorflow(symbolic):
    html = render_backward_partial(facts_for(_problem("seed"), symbolic))
    assert "How the tape gets there" in html
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="graph"' in html
    assert "<script" not in html
    # Namespaces aside, nothing points outside the page.
    assert "http" not in re.sub(r'xmlns(:\w+)?="[^"]*"', "", html)


def test_fast_path_does_not_import_tensorflow():
    code = (
        "import sys; sys.path.insert(0, 'tests'); import test_backward as t;"
        "from derive.models.registry import get_model, get_loss;"
        "from derive.symbolic.derivation import build_symbolic;"
        "s = build_symbolic(get_model('linear'), get_loss('mse'));"
        "f = t.facts_for(t._problem('seed'), s); t.draw(f);"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_backward_flag_parses():
    from derive.cli.parser import build_parser

    assert build_parser().parse_args(["report", "--no-backward"]).no_backward
    assert not build_parser().parse_args(["report"]).no_backward


# --- the real tape -------------------------------------------------------------------------


@pytest.mark.tensorflow
def test_tape_single_sample_acceptance(single_report):
    bw = single_report.backward
    assert bw.ok and bw.replay_matches and bw.ops_match
    residual = bw.node("residual")
    (r,) = residual.values
    (adjoint,) = residual.adjoints
    assert adjoint == pytest.approx(-0.42081, abs=1e-5)
    assert adjoint == 2 * r  # exact in float32: 1 * (2 r)
    assert bw.node("loss").adjoints == (1.0,)
    (x,) = bw.node("x").values
    assert bw.node("W").adjoints[0] == float(np.float32(x) * np.float32(adjoint))
    assert bw.node("b").adjoints == (adjoint,)
    assert bw.node("x").adjoints is None and bw.node("y").adjoints is None


@pytest.mark.tensorflow
def test_tape_two_samples_b_is_the_sum_of_two_adjoints(seed_report):
    bw = seed_report.backward
    assert bw.ok
    a1, a2 = bw.node("prediction").adjoints
    r1, r2 = bw.node("residual").values
    assert (a1, a2) == (r1, r2)  # 2 r_i / 2, exactly
    assert bw.node("b").adjoints[0] == float(np.float32(a1) + np.float32(a2))
    assert bw.node("b").adjoints[0] == seed_report.checks[2].tape


@pytest.mark.tensorflow
def test_tape_adjoints_come_from_tensorflow_and_a_wrong_one_is_flagged(symbolic):
    from derive.tape.backward import backward_at
    from derive.tape.gradient import gradient_at

    problem = _problem("tf-examples")
    trace = backward_at(problem, (*symbolic.model.graph, *symbolic.loss_definition.graph))
    script = gradient_at(problem)
    assert trace.recorded_ops == RECORDED
    assert trace.adjoints["x"] is None and trace.adjoints["y"] is None
    facts = build_backward(problem, symbolic, _formulas(symbolic), trace, script)
    assert facts.ok, [n.name for n in facts.checked if not n.ok]
    wrong = dict(trace.adjoints)
    wrong["prediction"] = tuple(2 * v for v in wrong["prediction"])
    facts = build_backward(
        problem, symbolic, _formulas(symbolic), dataclasses.replace(trace, adjoints=wrong), script
    )
    assert not facts.node("prediction").ok and not facts.ok


@pytest.mark.tensorflow
def test_cli_json_has_backward_and_no_backward_leaves_it_out(tmp_path):
    from derive.cli.main import main

    args = [
        "report",
        "--data",
        "single",
        *SINGLE_INIT_FLAG,
        "--format",
        "json",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert main(args) == 0
    data = json.loads((tmp_path / "single.json").read_text())
    names = [node["name"] for node in data["backward"]]
    assert {"prediction", "residual", "square", "loss", "W", "b"} <= set(names)
    residual = data["backward"][names.index("residual")]
    assert residual["adjoint"][0] == pytest.approx(-0.42081, abs=1e-5)
    assert residual["check"]["ok"] and data["ok"]
    assert main([*args, "--no-backward", "--name", "plain"]) == 0
    assert "backward" not in json.loads((tmp_path / "plain.json").read_text())


@pytest.mark.tensorflow
def test_html_has_the_section_and_stays_self_contained(seed_report):
    from derive.render.outputs import to_html

    html = to_html(seed_report)
    assert "7. How the tape gets there" in html and 'class="graph"' in html
    assert "<script" not in html and "<link" not in html and "<img" not in html


@pytest.mark.tensorflow
@pytest.mark.render
def test_pdf_renders_with_the_graph(seed_report):
    from derive.render.outputs import to_html
    from derive.render.pdf import make_fetcher, to_pdf

    fetcher = make_fetcher()
    pdf = to_pdf(to_html(seed_report), fetcher)
    assert pdf.startswith(b"%PDF") and fetcher.refused == []


@pytest.mark.parametrize("data", ["seed", "single", "tf-examples"])
def test_the_drafts_numpy_replay_passes_every_check(data):
    """The stand-in replay of the draft rounds like a tape, so the draft passes its checks:
    a draft that failed would be rendering formulas the report will not show."""
    from derive.problem.problem import BUILTIN_DATASETS, make_problem
    from derive.report.build import draft, prepare

    problem = make_problem(BUILTIN_DATASETS[data], init={"W": 0.2, "b": 0.7})
    report = draft(prepare(problem))
    assert report.backward is not None and report.backward.ok, report.backward.failures
    assert report.ok
