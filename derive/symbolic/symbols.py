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
