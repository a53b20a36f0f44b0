"""Logistic regression as registered entries: the model and the binary cross-entropy
made symbolic, the inputs they accept, and references beyond rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.common.errors import InputError
from derive.exact import reference
from derive.exact.reference import Samples
from derive.models.registry import get_loss, get_model
from derive.problem.problem import Dataset, make_problem
from derive.symbolic.derivation import Y_I, build_symbolic, wrong_formula
from derive.symbolic.logistic import Sigmoid


@pytest.mark.parametrize("k", [1, 2])
def test_the_derivation_reaches_sigma_minus_y_in_proved_steps(k: int) -> None:
    symbolic = build_symbolic(get_model("logistic", k), get_loss("bce"))
    z = symbolic.prediction
    features = [*symbolic.features, sp.Integer(1)]
    for (name, derivation), feature in zip(symbolic.derivations.items(), features, strict=True):
        assert all(step.verified for step in derivation.steps), name
        assert sp.simplify(derivation.result.summand - (Sigmoid(z) - Y_I) * feature) == 0


def _dataset(x: list[float], y: list[float]) -> Dataset:
    return Dataset(name="test", x=tuple(x), y=tuple(y), source="test")


@pytest.mark.parametrize(
    ("model", "loss"), [("logistic", "mse"), ("logistic", "mae"), ("linear", "bce")]
)
def test_a_loss_of_another_task_is_refused(model: str, loss: str) -> None:
    with pytest.raises(InputError, match=f"--loss {loss} is not a loss for"):
        make_problem(_dataset([1.0, 2.0], [0.0, 1.0]), model=model, loss=loss, seed=1)


def test_labels_other_than_0_and_1_are_refused_by_sample() -> None:
    with pytest.raises(InputError, match="needs labels y of 0 or 1; sample 3 has") as caught:
        make_problem(_dataset([1.0, 2.0, 3.0], [0, 1, 0.5]), model="logistic", loss="bce", seed=1)
    assert "0.5" in str(caught.value)


def test_references_lie_within_an_independent_computation() -> None:
    """The loss and both gradients at 256-bit balls against mpmath at 60 digits, on data
    whose logits reach 150 (where 1 - sigma(z) underflows in float64)."""
    symbolic = build_symbolic(get_model("logistic", 1), get_loss("bce"))
    x, y = [1.0, -2.0, 300.0, 0.5], [1.0, 0.0, 0.0, 1.0]
    w, b = 0.5, -0.25
    samples = Samples.of(x, y)
    parameters = {"W": Fraction(w), "b": Fraction(b)}
    with mpmath.workdps(60):

        def mean(term) -> mpmath.mpf:  # type: ignore[no-untyped-def]
            return sum(
                term(mpmath.mpf(w) * xi + b, xi, yi) for xi, yi in zip(x, y, strict=True)
            ) / len(x)

        def sigma(z):  # type: ignore[no-untyped-def]
            return 1 / (1 + mpmath.exp(-z))

        expected = {
            "L": mean(lambda z, xi, yi: mpmath.log(1 + mpmath.exp(z)) - yi * z),
            "W": mean(lambda z, xi, yi: (sigma(z) - yi) * xi),
            "b": mean(lambda z, xi, yi: sigma(z) - yi),
        }
        formulas = {"L": symbolic.loss} | {n: d.result for n, d in symbolic.derivations.items()}
        for key, formula in formulas.items():
            found = reference.value(symbolic, formula, parameters, samples)
            got = mpmath.mpf(found.numerator) / found.denominator
            assert abs(got - expected[key]) <= abs(expected[key]) * mpmath.mpf(10) ** -50, key
    terms = reference.sample_values(symbolic, symbolic.loss.summand, parameters, samples, [2])
    assert float(terms[0]) == pytest.approx(149.75)
    assert np.isfinite(float(terms[0]))


@pytest.mark.parametrize("kind", ["forget-sigma", "flip-sign", "drop-mean"])
def test_each_offered_wrong_derivative_changes_the_gradient(kind: str) -> None:
    """The loss entry's classic mistakes: sigma forgotten ((z - y) x), the sign flipped,
    1/n lost; each gives another value at ordinary data."""
    symbolic = build_symbolic(get_model("logistic", 1), get_loss("bce"))
    assert kind in symbolic.loss_definition.wrong_derivatives
    samples = Samples.of([1.0, -2.0, 3.0], [1.0, 0.0, 0.0])
    parameters = {"W": Fraction(0.5), "b": Fraction(-0.25)}
    right = symbolic.derivations["W"].result
    wrong = wrong_formula(right, kind)
    assert reference.value(symbolic, wrong, parameters, samples) != reference.value(
        symbolic, right, parameters, samples
    )
    if kind == "forget-sigma":
        z = symbolic.prediction
        assert sp.simplify(wrong.summand - (z - Y_I) * symbolic.features[0]) == 0
