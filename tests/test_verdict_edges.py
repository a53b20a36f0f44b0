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
import math
from fractions import Fraction

import numpy as np
import pytest

from derive import reference as reference_module
from derive.adjoints import (
    FloatReference,
    derive_adjoints,
    exact_forward_values,
    exact_references,
    fast_references,
    graph_of,
)
from derive.backward import build_backward
from derive.check import compare, rounding_bound
from derive.problem import BUILTIN_DATASETS, Dataset, make_problem
from derive.reference import Samples
from derive.tape import BackwardTrace, TapeResult
from tests.conftest import SINGLE_INIT

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
        rounding_bound(2, "float32", Fraction(1), Fraction(0)), value=2.0**-20
    )
    for tape in (1 + 2.0**-20, 1 - 2.0**-20):
        assert compare("x", Fraction(1), tape, bound, "float32").ok
    for tape in (1 + 2.0**-20 + 2.0**-40, 1 - 2.0**-20 - 2.0**-40):
        assert not compare("x", Fraction(1), tape, bound, "float32").ok


@pytest.mark.parametrize("n", [1, 2, 17, 1000])
@pytest.mark.parametrize("magnitude", [Fraction(1, 3), Fraction(7, 2), Fraction(10**6, 7)])
def test_compare_at_the_edge_of_a_rounding_bound(n, magnitude):
    bound = rounding_bound(n, "float32", magnitude, Fraction(0))
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
