"""The symbols every derivation shares: n, the index i, the data x_i and y_i."""

from __future__ import annotations

import sympy as sp

N = sp.Symbol("n", integer=True, positive=True)
I = sp.Symbol("i", integer=True, positive=True)  # noqa: E741 -- the summation index is i
# Real, as every value the tape holds: SymPy then differentiates |u| to sign(u).
X = sp.IndexedBase("x", real=True)
Y = sp.IndexedBase("y", real=True)
U = sp.Symbol("u", real=True)
X_I, Y_I = X[I], Y[I]

# Plain symbols standing for x_i and y_i, so that a summand can be compiled to a
# function of one sample.
XS, YS = sp.symbols("x_s y_s")


def feature_symbols(k: int) -> tuple[sp.Expr, ...]:
    """Sample i's features: x_i for one, x_{i,1} ... x_{i,k} for several."""
    return (X_I,) if k == 1 else tuple(X[I, j] for j in range(1, k + 1))


def plain_features(k: int) -> tuple[sp.Symbol, ...]:
    """Plain symbols standing for sample i's features, as XS for x_i."""
    return (XS,) if k == 1 else sp.symbols(f"x_s1:{k + 1}")
