"""The derivation: every step equals sympy.diff, and a drifting step is caught."""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy as sp

from derive.symbolic.derivation import (
    WRONG_DERIVATIVES,
    X_I,
    Y_I,
    I,
    N,
    absolute_form,
    evaluate_exact,
    verify_equal,
    wrong_formula,
)

W, B = sp.symbols("W b", real=True)  # real, as derive's parameters (d|r|/dr = sign r)
RESIDUAL = W * X_I + B - Y_I
LOSS = sp.Sum(RESIDUAL**2, (I, 1, N)) / N


def test_every_step_is_verified(symbolic):
    for derivation in symbolic.derivations.values():
        assert [s.rule for s in derivation.steps] == [
            "definition",
            "linearity of the mean",
            "chain rule",
            "power rule",
            "derivative of the model",
            "constant factor",
        ]
        assert all(step.verified for step in derivation.steps)


@pytest.mark.parametrize(
    ("parameter", "expected"),
    [
        ("W", 2 * sp.Sum(RESIDUAL * X_I, (I, 1, N)) / N),
        ("b", 2 * sp.Sum(RESIDUAL, (I, 1, N)) / N),
    ],
)
def test_results_are_the_textbook_gradients(symbolic, parameter, expected):
    result = symbolic.derivations[parameter].result
    assert verify_equal(result.expression, expected)
    assert verify_equal(result.expression, sp.diff(LOSS, sp.Symbol(parameter, real=True)))


def test_a_drifting_step_is_caught():
    """A step that loses the factor 2, or keeps y_i where x_i belongs, is not verified."""
    target = sp.diff(LOSS, W)
    assert verify_equal(sp.Sum(2 * RESIDUAL * X_I, (I, 1, N)) / N, target)
    assert not verify_equal(sp.Sum(RESIDUAL * X_I, (I, 1, N)) / N, target)
    assert not verify_equal(sp.Sum(2 * RESIDUAL * Y_I, (I, 1, N)) / N, target)
    assert not verify_equal(sp.Sum(2 * RESIDUAL * X_I, (I, 1, N)), target)


def test_written_out_gradient_is_the_derivative_of_the_written_out_loss(symbolic):
    for n in (1, 2, 5):
        loss_n = symbolic.loss.written_out(n)
        for derivation in symbolic.derivations.values():
            assert verify_equal(derivation.result.written_out(n), loss_n.diff(derivation.symbol))
            wrong = wrong_formula(derivation.result, "drop-factor-2")
            assert not verify_equal(wrong.written_out(n), loss_n.diff(derivation.symbol))


def test_exact_values_of_the_single_sample_case(symbolic):
    """x = 3.3, y = 1.7 and the script's W, b, all as float32, in exact arithmetic."""
    import numpy as np

    def f32(value: float) -> Fraction:
        return Fraction(float(np.float32(value)))

    parameters = {"W": f32(0.21318328), "b": f32(0.78609025)}
    xs, ys = [f32(3.3)], [f32(1.7)]
    residual = parameters["W"] * xs[0] + parameters["b"] - ys[0]
    d_w, _ = evaluate_exact(symbolic, symbolic.derivations["W"].result, parameters, xs, ys)
    d_b, _ = evaluate_exact(symbolic, symbolic.derivations["b"].result, parameters, xs, ys)
    loss, _ = evaluate_exact(symbolic, symbolic.loss, parameters, xs, ys)
    assert d_w == 2 * residual * xs[0]
    assert d_b == 2 * residual
    assert loss == residual**2
    assert float(d_w) == pytest.approx(-1.38867276, abs=5e-9)
    assert float(d_b) == pytest.approx(-0.42080993, abs=5e-9)


@pytest.mark.parametrize("kind", sorted(WRONG_DERIVATIVES))
def test_wrong_formulas_differ_from_the_derivative(symbolic, kind):
    right = symbolic.derivations["W"].result
    assert not verify_equal(wrong_formula(right, kind).expression, right.expression)


def test_absolute_form_removes_cancellation():
    assert absolute_form(2 * (W * X_I + B - Y_I) * X_I) == 2 * (W * X_I + B + Y_I) * X_I
    assert absolute_form(-3 * W) == 3 * W
