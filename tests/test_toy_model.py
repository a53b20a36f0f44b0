"""A second model is one entry: y_hat = W x^2 + b, registered here and nowhere else.

The test adds the entry to the registry (monkeypatched, so no other test sees it) and
builds the full report through the public pipeline: the derivation with every step
checked by SymPy, the initial checks, the backward section node by node and the
training run checked step by step. Without TensorFlow the tape is the tests' float32
emulation (tests/emulated_tape.py), which runs the entry's graph op by op with
TensorFlow's gradient functions written out there, not taken from derive's own replay;
marked `tensorflow`, the real tape runs. A wrong derivative of the toy model is flagged.
The handouts read the same entry: sheets and keys for the toy model, checked against
its emulated tape (and flagged against the line's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import pytest

from derive.models import registry
from derive.models.ops import Node
from derive.models.registry import Model
from derive.problem.problem import BUILTIN_DATASETS, Training, make_problem
from derive.report.build import explain
from tests.emulated_tape import emulated_tape, emulated_trace

INIT = {"W": 0.2, "b": 0.7}
STEPS = 6


def _tf_square_model(tf: Any, params: Mapping[str, Any], x: Any) -> Any:
    return params["W"] * tf.square(x) + params["b"]


TOY = Model(
    name="toy-square",
    title="toy model W x squared plus b",
    parameters=("W", "b"),
    prediction=lambda p, x: p["W"] * x[0] ** 2 + p["b"],
    tf_prediction=_tf_square_model,
    graph=(
        Node("x2", "square", ("x",), r"x_{i}^{2}", "x²"),
        Node("Wx2", "multiply", ("W", "x2"), r"\left(W x^{2}\right)_{i}", "W·x²"),
        Node("prediction", "add", ("Wx2", "b"), r"\hat{y}_{i}", "ŷ"),
    ),
)


@pytest.fixture
def toy(monkeypatch):
    """The registry with the toy entry added: the one change a new model makes."""
    monkeypatch.setattr(registry, "MODELS", {**registry.MODELS, TOY.name: TOY})
    return TOY


def toy_problem(data: str = "seed", steps: int = STEPS):
    return make_problem(
        BUILTIN_DATASETS[data],
        init=INIT,
        model=TOY.name,
        training=Training(steps, 0.01, 2),
    )


def assert_complete_and_checked(report) -> None:
    assert report.problem.model_name == TOY.name
    # The derivation: every step of every gradient verified by SymPy.
    assert [d.parameter for d in report.derivations] == ["W", "b"]
    for derivation in report.derivations:
        assert derivation.verified and derivation.written_out_verified
        assert derivation.steps and all(step.verified for step in derivation.steps)
    assert r"\left(W {x}_{i}^{2} + b - {y}_{i}\right) {x}_{i}^{2}" in report.derivations[0].result
    # The initial checks, the backward section and the training run.
    assert report.checks and all(check.ok for check in report.checks)
    assert report.backward is not None and report.backward.ok, report.backward.failures
    nodes = {node.name: node for node in report.backward.nodes}
    assert {"x2", "Wx2", "prediction"} <= set(nodes)
    assert nodes["x2"].check is None and nodes["Wx2"].check is not None
    assert report.training is not None and report.training.ok
    assert report.training.steps_checked == STEPS
    assert report.ok


@pytest.mark.parametrize("data", ["seed", "single"])
def test_a_registered_toy_model_gets_a_complete_checked_report(toy, data):
    problem = toy_problem(data)
    report = explain(problem, None, emulated_trace(problem), backward=True)
    assert_complete_and_checked(report)


def test_the_toy_report_renders_to_html_and_valid_json(toy):
    import json
    from importlib import resources

    import jsonschema

    from derive.render.jsonfile import to_json
    from derive.render.outputs import to_html

    problem = toy_problem()
    report = explain(problem, None, emulated_trace(problem), backward=True)
    html = to_html(report)
    assert TOY.title.capitalize() in html
    document = json.loads(to_json(report))
    schema = json.loads((resources.files("derive") / "schema" / "report.schema.json").read_text())
    jsonschema.validate(document, schema)
    assert document["problem"]["model"] == TOY.title


@pytest.mark.parametrize("wrong", ["drop-factor-2", "drop-mean", "x-for-y"])
def test_a_wrong_derivative_of_the_toy_model_is_flagged(toy, wrong):
    problem = toy_problem()
    report = explain(problem, wrong, emulated_trace(problem), backward=True)
    assert not report.ok
    assert not all(check.ok for check in report.checks[1:])


def test_the_toy_model_cannot_train_on_z_scores_without_declaring_the_map_back(toy):
    from derive.common.errors import InputError

    with pytest.raises(InputError):
        make_problem(BUILTIN_DATASETS["seed"], init=INIT, model=TOY.name, standardize=True)


def test_a_registered_toy_model_gets_checked_handouts(toy):
    from derive.handouts.files import document_html
    from derive.handouts.sheets import build_handouts

    handouts = build_handouts(3, class_seed=11, model=TOY.name, tape=emulated_tape)
    assert handouts.ok
    assert handouts.model_name == TOY.name
    assert "{x}_{i}^{2}" in handouts.model and "{x}_{i}^{2}" in handouts.gradients["W"]
    for sheet in handouts.sheets:
        assert sheet.problem.model == TOY.name
        # The key is the toy's: each residual W x^2 + b - y at the printed decimals.
        w, b = (Fraction(repr(sheet.init_given[name])) for name in ("W", "b"))
        for row in sheet.hand.samples:
            x, y = Fraction(repr(row.x[0])), Fraction(repr(row.y))
            assert row.residual == w * x * x + b - y
            assert row.shares["W"] == 2 * row.residual * x * x
        assert [entry.check.quantity for entry in sheet.checks] == [
            "L",
            "dL/dW",
            "dL/db",
            "W1",
            "b1",
        ]
    html = document_html(handouts, True)
    # No catalogue entry for the toy model: the sheet's title names it by its entry's title.
    assert TOY.title in html


def test_toy_handouts_with_a_wrong_tape_are_flagged(toy):
    from derive.handouts.sheets import build_handouts

    def linear_tape(problem):  # the line's gradient for the toy's sheets: a wrong tape
        return emulated_tape(dataclasses.replace(problem, model="linear"))

    handouts = build_handouts(2, class_seed=11, model=TOY.name, tape=linear_tape)
    assert not handouts.ok


@pytest.mark.tensorflow
def test_the_toy_model_on_the_real_tape(toy):
    from derive.tape.training import train

    problem = toy_problem()
    run = train(problem)
    assert run.tensorflow_version != "emulated"
    report = explain(problem, None, run, backward=True)
    assert_complete_and_checked(report)
