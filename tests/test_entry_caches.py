"""Whatever is derived once per model and loss is kept per *entry*, not per name.

A test (or a session in a notebook) may register one entry under a name, then another
entry under the same name. Every stage must then read the second entry: its derivation,
its roundings k, its flush-to-zero sensitivities. Caches keyed by the name would hand the
first entry's derivation to the second model and check its tape against the wrong
formulas.
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from derive.exact import underflow
from derive.exact.roundings import tape_roundings
from derive.models import registry
from derive.models.ops import Node
from derive.models.registry import Model
from derive.problem.problem import BUILTIN_DATASETS, Training, make_problem
from derive.report.build import prepare, symbolic_for
from derive.symbolic.derivation import X_I

INIT = {"W": 0.2, "b": 0.7}

# The line under another name, and W x^2 + b under that same name.
LINE = dataclasses.replace(registry.MODELS["linear"], name="twin", original_units=None)
SQUARE = Model(
    name="twin",
    title="W x squared plus b",
    parameters=("W", "b"),
    prediction=lambda p, x: p["W"] * x[0] ** 2 + p["b"],
    tf_prediction=lambda tf, p, x: p["W"] * tf.square(x) + p["b"],
    graph=(
        Node("x2", "square", ("x",), r"x_{i}^{2}", "x²"),
        Node("Wx2", "multiply", ("W", "x2"), r"\left(W x^{2}\right)_{i}", "W·x²"),
        Node("prediction", "add", ("Wx2", "b"), r"\hat{y}_{i}", "ŷ"),
    ),
)


def _registered(monkeypatch, entry: Model):
    """The registry with `entry` under the name "twin", and a problem of the seed data."""
    monkeypatch.setattr(registry, "MODELS", {**registry.MODELS, "twin": entry})
    problem = make_problem(
        BUILTIN_DATASETS["seed"], init=INIT, model="twin", training=Training(steps=0)
    )
    assert problem.model_entry is entry
    symbolic = symbolic_for(problem)
    k = tape_roundings(problem.n, problem.dtype, None, problem.model_entry, problem.loss_entry)
    return problem, symbolic, dict(k)


def test_two_entries_under_one_name_never_share_a_derivation(monkeypatch):
    w, b = sp.Symbol("W", real=True), sp.Symbol("b", real=True)  # derive's symbols are real
    _, line, line_k = _registered(monkeypatch, LINE)
    problem, square, square_k = _registered(monkeypatch, SQUARE)

    # The derivation is the second entry's, not the first's kept under the name.
    assert sp.simplify(line.prediction - (w * X_I + b)) == 0
    assert sp.simplify(square.prediction - (w * X_I**2 + b)) == 0
    assert line.derivations["W"].result != square.derivations["W"].result
    assert square.model is SQUARE and line.model is LINE

    # k counted by hand for n = 2 (a power of two: the division by n is exact), in any
    # order (the sum's depth n - 1 = 1). The line: r = fl(fl(fl(W x) + b) - y) has 3,
    # L = fl(r r) 7, + 1; the residual's adjoint fl(2 r) * 1/2: 4; W: times x, + 1,
    # + 1 for the sum: 6; b: 4 + 1 = 5. The toy model: x^2 is one rounding more at the
    # bottom of every chain: r has 4, L 9 + 1; the residual's adjoint 5; W: times x^2
    # (1 rounding), + 1, + 1: 8; b: 5 + 1 = 6.
    assert line_k == {"L": 8, "W": 6, "b": 5}
    assert square_k == {"L": 10, "W": 8, "b": 6}

    # The flush-to-zero sensitivities, and the report's bounds, are the toy's too.
    assert underflow.sensitivities(line) != underflow.sensitivities(square)
    ground = prepare(problem)
    assert [bound.roundings for bound in ground.bounds_for(None)] == [10, 8, 6]


def test_the_same_entry_registered_again_reuses_its_derivation(monkeypatch):
    _, first, _ = _registered(monkeypatch, LINE)
    _registered(monkeypatch, SQUARE)
    _, again, _ = _registered(monkeypatch, LINE)
    assert again is first  # cached per entry: deriving again takes about a second


def test_the_note_without_an_optimum_says_why_for_any_model(monkeypatch):
    from derive.report.landscape import landscape

    # The line through one sample: linear derivatives, a whole line of optima.
    single = make_problem(BUILTIN_DATASETS["single"], init=INIT, training=Training(steps=0))
    flat = landscape(single, symbolic_for(single))
    assert flat.solution is None and flat.affine
    # The same under W^2 x + b, whose derivatives are not linear in W: no closed form.
    # (The landscape reads the SymPy prediction alone; the line's graph is left as is.)
    curved = dataclasses.replace(LINE, prediction=lambda p, x: p["W"] ** 2 * x[0] + p["b"])
    problem, symbolic, _ = _registered(monkeypatch, curved)
    assert landscape(problem, symbolic).solution is None
    assert not landscape(problem, symbolic).affine
    # And with two samples the line has its unique optimum.
    problem, symbolic, _ = _registered(monkeypatch, LINE)
    assert landscape(problem, symbolic).solution is not None
