"""The backward section for many samples: float64 references, checks counted with NumPy.

The large-data path is forced on small data by lowering ``reference.EXACT_LIMIT`` (and
``backward.LISTED_LIMIT`` for the abridged lists), so that it can be set against the
exact path on the same problem. Fast tests use the stand-in tape of test_backward;
tests marked `tensorflow` use the real tape on more than EXACT_LIMIT samples.
"""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from conftest import render_backward_partial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_backward import _formulas, facts_for, perfect_tape

from derive.exact import reference
from derive.exact.adjoint_values import FloatReference, exact_references, fast_references
from derive.exact.check import gamma_bound, underflow_allowance, unit_roundoff
from derive.exact.float_bounds import gamma_bounds
from derive.exact.reference import Samples
from derive.problem.problem import Dataset, make_problem
from derive.render.graph import _number, draw, layout
from derive.report import backward_checks
from derive.report.backward import build_backward
from derive.report.todict import backward_to_list
from derive.symbolic.adjoints import derive_adjoints, graph_of

PER_SAMPLE = ("Wx", "prediction", "residual", "square")


def _random_problem(n: int, dtype: str = "float32", seed: int = 7, init=None):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-10, 10, n)
    y = 2 * x + 1 + rng.normal(0, 1, n)
    dataset = Dataset("random", tuple(x.tolist()), tuple(y.tolist()), "test")
    return make_problem(dataset, dtype=dtype, init=init or {"W": 0.2, "b": 0.7})


@pytest.fixture
def many(monkeypatch):
    """Every problem takes the path for many samples."""
    monkeypatch.setattr(reference, "EXACT_LIMIT", 0)


@pytest.fixture(scope="module")
def backward(symbolic):
    return derive_adjoints(graph_of(symbolic.model, symbolic.loss_definition), symbolic)


# --- the references -------------------------------------------------------------------------


_FLOAT32 = st.floats(-1e4, 1e4, width=32).filter(lambda v: v == 0 or abs(v) > 1e-6)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(st.tuples(_FLOAT32, _FLOAT32), min_size=1, max_size=40),
    w=_FLOAT32,
    b=_FLOAT32,
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_fast_references_are_within_their_allowance(symbolic, backward, data, w, b, dtype):
    dataset = Dataset("random", tuple(p[0] for p in data), tuple(p[1] for p in data), "t")
    problem = make_problem(dataset, dtype=dtype, init={"W": w, "b": b})
    fast = fast_references(backward, problem, symbolic, Samples.of(problem.x, problem.y))
    exact = exact_references(backward, problem, symbolic)
    assert fast is not None and set(fast) == set(exact)
    for name, ref in fast.items():
        want = exact[name]
        if isinstance(ref, FloatReference):
            # one entry per sample, or one for all (1/n at the square)
            shape = () if name == "square" else (problem.n,)
            assert ref.high.shape == ref.low.shape == ref.magnitudes.shape == shape
            for i, (exact_value, exact_magnitude) in enumerate(
                zip(want.values, want.magnitudes, strict=True)
            ):
                assert abs(ref.at(i) - exact_value) <= ref.allowance * exact_magnitude
                assert Fraction(ref.magnitude(i)) >= exact_magnitude  # an upper bound
        else:
            (value,), (magnitude,) = ref.values, ref.magnitudes
            assert abs(value - want.values[0]) <= ref.allowance * want.magnitudes[0]
            assert magnitude >= want.magnitudes[0]
    assert fast["square"].allowance == (0 if problem.n & (problem.n - 1) == 0 else 2**-90)


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(0, 2**23),
    dtype=st.sampled_from(["float32", "float64"]),
    entries=st.lists(
        st.tuples(st.floats(0, 1e30), st.sampled_from([0.0, 1.0, 3.5, 1e6, 1e300])),
        min_size=1,
        max_size=10,
    ),
    allowance=st.sampled_from([Fraction(0), Fraction(1, 2**48), Fraction(1, 2**52)]),
)
def test_vectorised_tolerances_never_fall_below_the_exact_bound(k, dtype, entries, allowance):
    magnitudes = [m for m, _ in entries]
    flushes = [s for _, s in entries]
    tolerances = gamma_bounds(k, dtype, np.array(magnitudes), np.array(flushes), allowance)
    u = unit_roundoff(dtype)
    for magnitude, sensitivity, tolerance in zip(magnitudes, flushes, tolerances, strict=True):
        exact = (k * u / (1 - k * u) + allowance) * Fraction(magnitude) + underflow_allowance(
            k, dtype, Fraction(sensitivity)
        )
        assert Fraction(float(tolerance)) >= exact
        # and hardly above it: a step up from each rounded product and from their sum
        # (near the subnormal range, steps are absolute: a few smallest subnormals)
        slack = 4 * 2.0**-1074 if dtype == "float64" else 4 * 2.0**-149
        assert float(tolerance) <= math.nextafter(float(exact) * (1 + 2**-50) + slack, math.inf)
        assert exact > 0 or tolerance == 0
        bound = gamma_bound(k, dtype, Fraction(magnitude), Fraction(sensitivity), allowance)
        assert bound.value <= tolerance


def test_tolerance_without_roundings_or_flushes_is_zero():
    zero = np.zeros(2)
    assert gamma_bounds(0, "float32", np.array([1.0, 0.0]), zero, Fraction(0)).tolist() == [0, 0]
    # k = 0 but a possible flush to zero: lambda itself
    assert gamma_bounds(0, "float32", np.array([1.0]), np.ones(1), Fraction(0))[0] >= 2.0**-126
    assert np.isinf(gamma_bounds(2**24, "float32", np.array([1.0]), zero[:1], Fraction(0))).all()


def test_core_sums_are_computed_once(symbolic):
    problem = _random_problem(50)
    samples = Samples.of(problem.x, problem.y)
    parameters = {k: Fraction(v) for k, v in problem.initial.values.items()}
    summand = symbolic.derivations["b"].result.summand
    first = reference.exact_sum(symbolic, summand, parameters, samples)
    assert reference.exact_sum(symbolic, summand, parameters, samples) == first
    assert len(samples.sums) == 1


# --- the checks: the same verdicts as the exact path --------------------------------------


def _agree(exact, fast):
    assert exact.exact and not fast.exact
    assert exact.ok == fast.ok
    assert [n.name for n in exact.checked] == [n.name for n in fast.checked]
    for want, got in zip(exact.checked, fast.checked, strict=True):
        assert (got.check.samples, got.check.failed) == (want.check.samples, want.check.failed)
        assert got.check.indices == want.check.indices
        assert got.check.roundings == want.check.roundings
        for a, b in zip(want.check.checks, got.check.checks, strict=True):
            assert a.ok == b.ok and a.tape == b.tape and a.quantity == b.quantity
            # The reference moves by at most the allowance; the tolerance only grows by it.
            allowance = 2**-90 if got.per_sample else 2**-52
            slack = allowance * b.bound.magnitude
            # (each rounded to float64 for display: they may differ in the last bit)
            assert abs(a.reference - b.reference) <= slack + math.ulp(a.reference)
            assert a.tolerance <= b.tolerance <= (a.tolerance + 2 * slack) * (1 + 2**-40)
        assert [s.label for s in got.check.shown] == [s.label for s in want.check.shown]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 3, 64, 300])
def test_many_samples_path_agrees_with_the_exact_path(symbolic, monkeypatch, dtype, n):
    problem = _random_problem(n, dtype)
    exact = facts_for(problem, symbolic)
    monkeypatch.setattr(reference, "EXACT_LIMIT", 0)
    fast = facts_for(problem, symbolic)
    _agree(exact, fast)
    assert fast.ok
    method = str(fast.reference_method)
    assert "float64" in method and "2<sup>\u221290</sup>" in method
    assert isinstance(fast.node("residual").values, np.ndarray)
    assert isinstance(exact.node("residual").values, tuple)


def test_a_corrupted_adjoint_among_many_is_flagged(symbolic, monkeypatch):
    problem = _random_problem(300)
    trace, script = perfect_tape(problem, symbolic)
    adjoints = dict(trace.adjoints)
    residual = list(adjoints["residual"])
    residual[137] *= 1 + 2**-12  # about 2^12 ULPs off at sample 138
    adjoints["residual"] = tuple(residual)
    corrupted = dataclasses.replace(trace, adjoints=adjoints)
    formulas = _formulas(symbolic)
    exact = build_backward(problem, symbolic, formulas, corrupted, script)
    monkeypatch.setattr(reference, "EXACT_LIMIT", 0)
    fast = build_backward(problem, symbolic, formulas, corrupted, script)
    _agree(exact, fast)
    check = fast.node("residual").check
    assert (check.samples, check.failed) == (300, 1) and not check.ok
    assert str(check.shown[0].label) == "138 (worst of 300)" and not check.shown[0].check.ok
    assert not fast.ok
    assert all(node.ok for node in fast.checked if node.name != "residual")
    assert tuple(map(str, fast.failures)) == (
        "the tape's adjoint at r is beyond its bound (1 of 300 samples)",
    )


def test_just_beyond_the_bound_is_flagged_on_the_many_samples_path(symbolic, many):
    problem = _random_problem(100)
    facts = facts_for(problem, symbolic)
    check = facts.node("prediction").check.checks[42]
    moved = check.tape + 2 * check.tolerance * (1 if check.tape >= 0 else -1)
    moved = float(np.nextafter(np.float32(moved), np.float32(math.copysign(np.inf, moved))))
    trace, _ = perfect_tape(problem, symbolic)
    values = list(trace.adjoints["prediction"])
    values[42] = moved
    adjoints = dict(trace.adjoints) | {"prediction": tuple(values)}
    node = facts_for(problem, symbolic, adjoints=adjoints).node("prediction")
    assert node.check.failed == 1 and not node.check.checks[42].ok


def test_a_non_finite_adjoint_fails(symbolic, many):
    problem = _random_problem(30)
    trace, _ = perfect_tape(problem, symbolic)
    values = list(trace.adjoints["Wx"])
    values[3] = math.nan
    adjoints = dict(trace.adjoints) | {"Wx": tuple(values)}
    facts = facts_for(problem, symbolic, adjoints=adjoints)
    assert facts.node("Wx").check.failed == 1 and not facts.node("Wx").check.checks[3].ok
    assert not facts.ok


# --- many samples: bounded facts, abridged lists ----------------------------------------------


def test_beyond_the_listed_limit_only_the_shown_checks_are_kept(symbolic, many, monkeypatch):
    monkeypatch.setattr(backward_checks, "LISTED_LIMIT", 10)
    problem = _random_problem(40)
    trace, _ = perfect_tape(problem, symbolic)
    values = list(trace.adjoints["residual"])
    values[20] *= 1 + 2**-12
    adjoints = dict(trace.adjoints) | {"residual": tuple(values)}
    facts = facts_for(problem, symbolic, adjoints=adjoints)
    table_rows = (0, 1, 2, 3, 4, 35, 36, 37, 38, 39)
    for node in facts.checked:
        check = node.check
        if node.per_sample:
            assert check.samples == 40 and not check.complete
            assert set(table_rows) <= set(check.indices) and len(check.checks) <= 11
        else:
            assert check.complete and check.indices == (0,)
    residual = facts.node("residual").check
    assert residual.indices == (*table_rows[:5], 20, *table_rows[5:])
    assert residual.failed == 1 and str(residual.shown[0].label) == "21 (worst of 40)"

    nodes = {node["name"]: node for node in backward_to_list(facts)}
    json.dumps(list(nodes.values()), allow_nan=False)
    entry = nodes["residual"]
    assert entry["rows"] == [1, 2, 3, 4, 5, 21, 36, 37, 38, 39, 40]
    assert len(entry["value"]) == len(entry["adjoint"]) == len(entry["check"]["tape"]) == 11
    assert entry["adjoint"][5] == values[20] == entry["check"]["tape"][5]
    assert entry["value"][0] == facts.node("residual").values[0]
    assert entry["check"]["samples"] == 40 and entry["check"]["failed"] == 1
    assert not entry["check"]["ok"]
    for name in ("W", "b", "loss"):
        assert "rows" not in nodes[name] and "samples" not in nodes[name]["check"]
        assert len(nodes[name]["value"]) == 1


def test_json_lists_stay_complete_up_to_the_listed_limit(symbolic, many):
    nodes = backward_to_list(facts_for(_random_problem(30), symbolic))
    for node in nodes:
        width = 30 if node["name"] in PER_SAMPLE else 1
        assert "rows" not in node and "samples" not in node["check"]
        assert len(node["value"]) == len(node["check"]["reference"]) == width


def test_graph_summaries_on_arrays(symbolic, many):
    facts = facts_for(_random_problem(50), symbolic)
    placed, _, _ = layout(facts)
    for name in ("x", "residual"):
        node = facts.node(name)
        rows = {row.index: row for row in placed[name].box.rows}
        assert rows["min"].value == _number(min(node.values))
        assert rows["max"].value == _number(max(node.values))
        assert rows["\u03a3"].value == _number(math.fsum(node.values))
    adjoint_sum = {row.index: row for row in placed["prediction"].box.rows}["\u03a3"].adjoint
    assert adjoint_sum == _number(math.fsum(facts.node("prediction").adjoints))
    assert "<svg" in draw(facts)


def test_backward_partial_shows_the_method_and_the_counts(symbolic, many):
    html = render_backward_partial(facts_for(_random_problem(30), symbolic))
    assert "exact rational arithmetic would take minutes" in html
    assert "2<sup>\u221290</sup> M\u1d62" in html
    assert html.count("0 of 30") == len(PER_SAMPLE)
    assert "exact reference" not in html


# --- the real tape, beyond EXACT_LIMIT ------------------------------------------------------


@pytest.mark.tensorflow
def test_tape_beyond_the_exact_limit(symbolic, monkeypatch):
    from derive.tape.backward import backward_at
    from derive.tape.gradient import gradient_at

    problem = _random_problem(reference.EXACT_LIMIT + 500)
    nodes = (*symbolic.model.graph, *symbolic.loss_definition.graph)
    trace = backward_at(problem, nodes)
    script = gradient_at(problem)
    formulas = _formulas(symbolic)
    fast = build_backward(problem, symbolic, formulas, trace, script)
    assert fast.ok and not fast.exact and fast.replay_matches
    for name in PER_SAMPLE:
        check = fast.node(name).check
        assert (check.samples, check.failed) == (problem.n, 0) and check.complete
    monkeypatch.setattr(reference, "EXACT_LIMIT", problem.n)
    _agree(build_backward(problem, symbolic, formulas, trace, script), fast)

    wrong = dict(trace.adjoints)
    prediction = np.array(wrong["prediction"])
    prediction[1234] *= 2
    wrong["prediction"] = prediction
    monkeypatch.setattr(reference, "EXACT_LIMIT", 0)
    facts = build_backward(
        problem, symbolic, formulas, dataclasses.replace(trace, adjoints=wrong), script
    )
    check = facts.node("prediction").check
    assert check.failed == 1 and str(check.shown[0].label).startswith("1235 (worst")
    assert not facts.ok


def test_per_sample_checks_without_a_bound_never_pass():
    """k u >= 1 leaves no gamma_k: even a tape equal to the reference must not pass."""
    from fractions import Fraction

    from derive.report.backward_checks import float_verdicts

    values = np.array([0.5, -1.25, 3.0])
    reference = FloatReference(values, np.zeros(3), np.abs(values), Fraction(0))
    flushes = np.zeros(3)
    no_bound = 2**24  # k u = 1 in float32
    assert not float_verdicts(reference, values.copy(), no_bound, "float32", flushes).ok.any()
    assert float_verdicts(reference, values.copy(), no_bound - 1, "float32", flushes).ok.all()
