"""References in ball arithmetic (derive.exact.certified): the ball holds the exact value.

Checked three ways: on a polynomial formula the ball holds the exact rational reference;
on the logistic cross-entropy and its gradient (exp and log) it holds an independent
mpmath evaluation at 120 digits; at a precision too low to be useful it still holds it,
its radius grown accordingly (the ball is certified, not a guess)."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.exact.certified import Enclosure, enclose_total
from derive.exact.sums import Evaluator, data_sums
from derive.models.registry import get_loss, get_model
from derive.symbolic.derivation import Y_I, Formula, N, build_symbolic


def _data(k: int, n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    columns = [rng.normal(0, 2, n).astype(np.float32).astype(np.float64) for _ in range(k)]
    y = (rng.uniform(0, 1, n) < 0.5).astype(np.float64)
    return columns, y


@pytest.mark.parametrize("k", [1, 2, 5])
def test_a_polynomial_reference_lies_in_its_ball(k: int) -> None:
    symbolic = build_symbolic(get_model("linear", k), get_loss("mse", features=k))
    columns, y = _data(k, 300, k)
    theta = [Fraction(float(np.float32(v))) for v in np.linspace(-0.7, 0.9, k + 1)]
    data = data_sums(columns if k > 1 else columns[0], y)
    for name, derivation in symbolic.derivations.items():
        exact = Evaluator(symbolic, derivation.result, data).value(theta)
        ball = enclose_total(symbolic, derivation.result, theta, columns, y)
        assert ball.contains(exact), name
        assert ball.relative_radius < 1e-60


def _logistic(k: int) -> tuple:  # type: ignore[type-arg]
    """The linear model's symbols with the logistic cross-entropy and its gradient."""
    symbolic = build_symbolic(get_model("linear", k), get_loss("mse", features=k))
    z = symbolic.prediction
    loss = Formula(1 / N, sp.log(1 + sp.exp(z)) - Y_I * z)
    gradient = Formula(1 / N, (1 / (1 + sp.exp(-z)) - Y_I) * symbolic.features[0])
    return symbolic, loss, gradient


def _mpmath_mean(function, columns, y) -> mpmath.mpf:  # type: ignore[no-untyped-def]
    with mpmath.workdps(120):
        total = mpmath.mpf(0)
        for i in range(len(y)):
            row = (*(mpmath.mpf(float(c[i])) for c in columns), mpmath.mpf(float(y[i])))
            total += function(*row)
        return total / len(y)


def _mp(value: Fraction) -> mpmath.mpf:
    return mpmath.mpf(value.numerator) / value.denominator


def _near(ball: Enclosure, value: mpmath.mpf) -> bool:
    """Within the ball, give or take mpmath's own error at 120 digits."""
    with mpmath.workdps(120):
        slack = abs(value) * mpmath.mpf(10) ** -110
        return abs(_mp(ball.midpoint) - value) <= _mp(ball.radius) + slack


@pytest.mark.parametrize("k", [1, 2])
def test_the_logistic_loss_and_gradient_lie_in_their_balls(k: int) -> None:
    symbolic, loss, gradient = _logistic(k)
    columns, y = _data(k, 200, 10 + k)
    theta = [Fraction(float(np.float32(v))) for v in np.linspace(-1.5, 2.5, k + 1)]
    w = [_mp(t) for t in theta]

    def z(xs):  # type: ignore[no-untyped-def]
        return sum(wj * xj for wj, xj in zip(w[:-1], xs, strict=True)) + w[-1]

    def loss_term(*row):  # type: ignore[no-untyped-def]
        *xs, yi = row
        return mpmath.log(1 + mpmath.exp(z(xs))) - yi * z(xs)

    def gradient_term(*row):  # type: ignore[no-untyped-def]
        *xs, yi = row
        return (1 / (1 + mpmath.exp(-z(xs))) - yi) * xs[0]

    for formula, term in ((loss, loss_term), (gradient, gradient_term)):
        ball = enclose_total(symbolic, formula, theta, columns, y)
        assert _near(ball, _mpmath_mean(term, columns, y))
        assert ball.relative_radius < 1e-60


def test_a_low_precision_ball_still_holds_the_exact_value() -> None:
    symbolic, _, gradient = _logistic(1)
    columns, y = _data(1, 100, 3)
    theta = [Fraction(0.75), Fraction(-0.5)]
    coarse = enclose_total(symbolic, gradient, theta, columns, y, precision_bits=12)
    fine = enclose_total(symbolic, gradient, theta, columns, y)
    assert coarse.radius > 1000 * fine.radius  # wider, as it should be
    assert abs(coarse.midpoint - fine.midpoint) <= coarse.radius + fine.radius
    # a wrong value just outside the fine ball is not in it
    assert not fine.contains(fine.midpoint + 2 * fine.radius + Fraction(1, 10**40))
