"""A derived formula as a polynomial in the parameters whose coefficients are sums of the data.

For the linear model with the mean squared error, the derivative SymPy derives,
``coefficient(n) * sum_i summand(W, b, x_i, y_i)``, is a polynomial in the
parameters and the data. Expanding the summand and summing term by term gives

    dL/dW = 2/n * (W * sum x_i^2 + b * sum x_i - sum x_i y_i),

so the data sums are formed once, exactly, and every training step costs a few
rational operations instead of n. The expansion is SymPy's (``expand``, ``Poly``),
:attr:`SumsForm.verified` records that SymPy proves the sums form equal to the
derived formula, and the tests check the numbers against
:func:`derive.symbolic.evaluate_exact`. A formula that is not a polynomial (a future
model) falls back to summing sample by sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

from .expansion import Expansion, exact_sum
from .symbolic import (
    X_I,
    Y_I,
    Formula,
    I,
    N,
    Symbolic,
    absolute_form,
    evaluate_exact,
    latex,
    verify_equal,
)

_XS, _YS = sp.symbols("x_s y_s")

Exponents = tuple[int, ...]  # one exponent per parameter


@dataclass(frozen=True)
class SumsForm:
    """coefficient(n) * sum over k of c_k(parameters) * sum_i x_i^a_k y_i^b_k."""

    coefficient: sp.Expr
    terms: tuple[tuple[sp.Expr, int, int], ...]  # (c_k, a_k, b_k)
    verified: bool  # SymPy proves it equal to the formula it came from

    @property
    def expression(self) -> sp.Expr:
        sums = [
            c * sp.Sum(X_I**a * Y_I**b, (I, 1, N)) if (a, b) != (0, 0) else c * N
            for c, a, b in self.terms
        ]
        return sp.Mul(self.coefficient, sp.Add(*sums), evaluate=False)

    @property
    def latex(self) -> str:
        return latex(self.expression)


def sums_form(symbolic: Symbolic, formula: Formula) -> SumsForm | None:
    """The formula regrouped by data monomials, or None when it is not a polynomial."""
    summand = formula.summand.subs({X_I: _XS, Y_I: _YS})
    try:
        poly = sp.Poly(sp.expand(summand), _XS, _YS)
    except sp.PolynomialError:
        return None
    if any(c.has(I, N) for c in poly.coeffs()):
        return None
    terms = tuple((sp.factor(c), a, b) for (a, b), c in poly.terms())
    form = SumsForm(formula.coefficient, terms, verified=False)
    return SumsForm(
        formula.coefficient, terms, verified=verify_equal(form.expression, formula.expression)
    )


class Evaluator:
    """Exact value, and rounding-error magnitude, of one formula at any parameter values.

    Both are polynomials in the parameters with exact rational coefficients (data sums
    times SymPy's coefficients), built once; a call evaluates that polynomial. The
    magnitude is the formula's :func:`~derive.symbolic.absolute_form` at |parameters|
    and |data|, as in the initial check.
    """

    def __init__(
        self,
        symbolic: Symbolic,
        formula: Formula,
        xs: Sequence[Fraction],
        ys: Sequence[Fraction],
    ) -> None:
        self.symbolic = symbolic
        self.formula = formula
        self.xs, self.ys = list(xs), list(ys)
        self.form = sums_form(symbolic, formula)
        self.polynomial = _polynomial(symbolic, formula, self.xs, self.ys)
        magnitude = Formula(abs(formula.coefficient), absolute_form(formula.summand))
        self.magnitude_polynomial = _polynomial(
            symbolic, magnitude, [abs(x) for x in xs], [abs(y) for y in ys]
        )
        self._magnitude_formula = magnitude

    def value(self, parameters: Sequence[Fraction]) -> Fraction:
        if self.polynomial is None:
            return self._sample_by_sample(self.formula, parameters, self.xs, self.ys)
        return _evaluate(self.polynomial, parameters)

    def magnitude(self, parameters: Sequence[Fraction]) -> Fraction:
        absolute = [abs(p) for p in parameters]
        if self.magnitude_polynomial is None:
            xs, ys = [abs(x) for x in self.xs], [abs(y) for y in self.ys]
            return self._sample_by_sample(self._magnitude_formula, absolute, xs, ys)
        return _evaluate(self.magnitude_polynomial, absolute)

    def _sample_by_sample(
        self,
        formula: Formula,
        parameters: Sequence[Fraction],
        xs: Sequence[Fraction],
        ys: Sequence[Fraction],
    ) -> Fraction:
        """The slow route, for a formula that is not a polynomial in the parameters."""
        named = dict(zip(self.symbolic.parameters, parameters, strict=True))
        value, _ = evaluate_exact(self.symbolic, formula, named, xs, ys)
        return value


def _polynomial(
    symbolic: Symbolic, formula: Formula, xs: Sequence[Fraction], ys: Sequence[Fraction]
) -> dict[Exponents, Fraction] | None:
    """{exponents of the parameters: exact coefficient} for the formula over this data."""
    parameters = list(symbolic.parameters.values())
    summand = formula.summand.subs({X_I: _XS, Y_I: _YS})
    try:
        poly = sp.Poly(sp.expand(summand), _XS, _YS, *parameters)
    except sp.PolynomialError:
        return None
    if any(not c.is_Rational for c in poly.coeffs()):
        return None
    n = len(xs)
    scale = Fraction(str(formula.coefficient.subs(N, n)))
    data_sums: dict[tuple[int, int], Fraction] = {}
    result: dict[Exponents, Fraction] = {}
    for (a, b, *exponents), c in poly.terms():
        if (a, b) not in data_sums:
            data_sums[a, b] = _data_sum(xs, ys, a, b)
        key = tuple(exponents)
        result[key] = result.get(key, Fraction(0)) + scale * Fraction(str(c)) * data_sums[a, b]
    return result


# Beyond this many samples, data sums are formed with error-free float64 arithmetic
# (still exact) instead of one rational operation per sample.
FAST_SUM_SAMPLES = 2000


def _data_sum(xs: Sequence[Fraction], ys: Sequence[Fraction], a: int, b: int) -> Fraction:
    """sum of x_i^a y_i^b, exactly."""
    if len(xs) <= FAST_SUM_SAMPLES:
        return sum((x**a * y**b for x, y in zip(xs, ys, strict=True)), Fraction(0))
    # The values are floats (the dtype's), so float() gives them back exactly, and
    # products held as expansions stay exact.
    x = Expansion.of(np.array([float(v) for v in xs]))
    y = Expansion.of(np.array([float(v) for v in ys]))
    term = Expansion.of(1.0)
    for factor in [x] * a + [y] * b:
        term = term * factor
    return exact_sum(term, len(xs))


def _evaluate(polynomial: Mapping[Exponents, Fraction], parameters: Sequence[Fraction]) -> Fraction:
    total = Fraction(0)
    for exponents, coefficient in polynomial.items():
        term = coefficient
        for value, exponent in zip(parameters, exponents, strict=True):
            if exponent == 1:
                term *= value
            elif exponent:
                term *= value**exponent
        total += term
    return total


def affine_solution(
    gradients: Sequence[Evaluator],
) -> tuple[Fraction, ...] | None:
    """Where every gradient is zero, when the gradients are affine in the parameters.

    For least squares with a model linear in its parameters the gradient is
    A theta + c; solving A theta = -c exactly (Gaussian elimination over the
    rationals) gives the closed-form optimum. None when the gradient is not affine
    or A is singular (for instance all x equal, or a single sample).
    """
    size = len(gradients)
    rows: list[list[Fraction]] = []
    for gradient in gradients:
        polynomial = gradient.polynomial
        if polynomial is None or any(sum(e) > 1 for e in polynomial):
            return None
        row = [Fraction(0)] * (size + 1)
        for exponents, coefficient in polynomial.items():
            if sum(exponents) == 0:
                row[size] = -coefficient
            else:
                row[exponents.index(1)] = coefficient
        rows.append(row)
    for column in range(size):
        pivot = next((r for r in range(column, size) if rows[r][column] != 0), None)
        if pivot is None:
            return None
        rows[column], rows[pivot] = rows[pivot], rows[column]
        for r in range(size):
            if r != column and rows[r][column] != 0:
                factor = rows[r][column] / rows[column][column]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[column], strict=True)]
    return tuple(rows[k][size] / rows[k][k] for k in range(size))
