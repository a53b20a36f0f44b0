"""Logistic regression's derivation (derive.symbolic.logistic): every step proved equal
to SymPy's derivative of the definition with sigma written as exp, the result
(sigma(z_i) - y_i) x_ij / n, and the classic mistakes refused by the same check."""

from __future__ import annotations

import pytest
import sympy as sp

from derive.symbolic.logistic import Sigmoid, cross_entropy, derive_logistic, same_term
from derive.symbolic.symbols import Y_I, N, feature_symbols


def _logit(k: int) -> tuple[dict[str, sp.Symbol], sp.Expr]:
    names = ["W"] if k == 1 else [f"W_{j}" for j in range(1, k + 1)]
    symbols = {name: sp.Symbol(name, real=True) for name in [*names, "b"]}
    features = feature_symbols(k)
    z = sum((symbols[w] * x for w, x in zip(names, features, strict=True)), sp.Integer(0))
    return symbols, z + symbols["b"]


@pytest.mark.parametrize("k", [1, 2])
def test_every_step_is_proved_and_the_result_is_sigma_minus_y(k: int) -> None:
    symbols, z = _logit(k)
    features = feature_symbols(k)
    for name, symbol in symbols.items():
        derivation = derive_logistic(name, symbol, z)
        assert [step.verified for step in derivation.steps] == [True] * 7, name
        expected = (Sigmoid(z) - Y_I) * (1 if name == "b" else features[list(symbols).index(name)])
        assert sp.simplify(derivation.result.summand - expected) == 0
        assert derivation.result.coefficient == 1 / N


def test_sigma_prime_is_checked_not_trusted() -> None:
    """The proof writes sigma with exp, so a Sigmoid whose derivative were wrong could
    not make a step pass: the identity itself is proved from exp."""
    z = sp.Symbol("z", real=True)
    assert same_term(Sigmoid(z).diff(z), sp.diff(1 / (1 + sp.exp(-z)), z))
    assert not same_term(Sigmoid(z), sp.diff(1 / (1 + sp.exp(-z)), z))


@pytest.mark.parametrize(
    "mistake",
    [
        "forgot sigma'",  # (z - y) x: the linear model's gradient
        "flipped sign",  # (y - sigma) x
        "lost the logistic",  # (sigma(1 - sigma) - y) x
    ],
)
def test_a_classic_mistake_fails_the_check(mistake: str) -> None:
    symbols, z = _logit(1)
    (x,) = feature_symbols(1)
    target = sp.diff(cross_entropy(1 / (1 + sp.exp(-z))), symbols["W"])
    wrong = {
        "forgot sigma'": (z - Y_I) * x,
        "flipped sign": (Y_I - Sigmoid(z)) * x,
        "lost the logistic": (Sigmoid(z) * (1 - Sigmoid(z)) - Y_I) * x,
    }[mistake]
    assert not same_term(wrong, target)
    assert same_term((Sigmoid(z) - Y_I) * x, target)
