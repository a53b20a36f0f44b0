"""A derived formula as a polynomial in the parameters whose coefficients are sums of the data.

For the linear model with the mean squared error, the derivative SymPy derives,
``coefficient(n) * sum_i summand(W, b, x_i, y_i)``, is a polynomial in the
parameters and the data. Expanding the summand and summing term by term gives

    dL/dW = 2/n * (W * sum x_i^2 + b * sum x_i - sum x_i y_i),

so the data sums are formed once, exactly, and every training step costs a few
rational operations instead of n. The expansion is SymPy's (``expand``, ``Poly``),
:attr:`SumsForm.verified` records that SymPy proves the sums form equal to the
derived formula, and the tests check the numbers against
:func:`derive.symbolic.derivation.evaluate_exact`. A formula that is not a polynomial (a future
model) falls back to summing sample by sample.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

from ..symbolic.derivation import (
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
from .expansion import Expansion, exact_sum, products_are_exact
from .polynomial import Exponents, Polynomial


def _plain_data(symbolic: Symbolic) -> tuple[dict[sp.Expr, sp.Symbol], tuple[sp.Symbol, ...]]:
    """Plain symbols for sample i's data (features, then y), and the substitution."""
    data = (*symbolic.features, Y_I)
    plain = sp.symbols(f"d_s0:{len(data)}")
    return dict(zip(data, plain, strict=True)), plain


@dataclass(frozen=True)
class SumsForm:
    """coefficient(n) * sum over m of c_m(parameters) * sum_i x_i1^a_1 ... x_ik^a_k y_i^b."""

    coefficient: sp.Expr
    terms: tuple[tuple[sp.Expr, Exponents], ...]  # (c_m, exponents of the data columns)
    verified: bool  # SymPy proves it equal to the formula it came from
    data: tuple[sp.Expr, ...] = (X_I, Y_I)  # sample i's data: the features, then y

    @property
    def expression(self) -> sp.Expr:
        sums = [
            c * sp.Sum(sp.Mul(*(d**e for d, e in zip(self.data, ex, strict=True))), (I, 1, N))
            if any(ex)
            else c * N
            for c, ex in self.terms
        ]
        return sp.Mul(self.coefficient, sp.Add(*sums), evaluate=False)

    @property
    def latex(self) -> str:
        return latex(self.expression)


def sums_form(symbolic: Symbolic, formula: Formula) -> SumsForm | None:
    """The formula regrouped by data monomials, or None when it is not a polynomial."""
    substitution, plain = _plain_data(symbolic)
    summand = formula.summand.xreplace(substitution)
    try:
        poly = sp.Poly(sp.expand(summand), *plain)
    except sp.PolynomialError:
        return None
    if any(c.has(I, N) for c in poly.coeffs()):
        return None
    data = tuple(substitution)
    terms = tuple((sp.factor(c), tuple(ex)) for ex, c in poly.terms())
    form = SumsForm(formula.coefficient, terms, verified=False, data=data)
    return SumsForm(
        formula.coefficient,
        terms,
        verified=verify_equal(form.expression, formula.expression),
        data=data,
    )


def as_columns(
    x: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
) -> tuple[np.ndarray, ...]:
    """One feature's values, or the columns of several, as float64 columns."""
    several = len(x) and isinstance(x[0], (Sequence, np.ndarray))
    return tuple(np.asarray(c, dtype=np.float64) for c in (x if several else (x,)))


def sample_rows(x: Sequence[Fraction] | Sequence[Sequence[Fraction]]) -> list[tuple[Fraction, ...]]:
    """Each sample's features: a feature per sample, or a row of them, as a tuple."""
    return [tuple(v) if isinstance(v, Sequence) else (v,) for v in x]


class DataSums:
    """Sums of x_i1^a_1 ... x_ik^a_k y_i^b over one data set (and of the same in absolute
    values), exact, each formed once; `x` is one feature's column or the columns of several.

    The values are the tape's floats, held as float64 arrays. Up to FAST_SUM_SAMPLES
    samples a sum is taken in rational arithmetic; beyond, every product is held
    exactly as a float64 expansion and the parts are summed exactly
    (:func:`derive.exact.expansion.exact_sum`), which takes milliseconds for a million
    samples where rationals take seconds per sum.
    """

    def __init__(
        self,
        x: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
        y: Sequence[float] | np.ndarray,
    ) -> None:
        self.columns = as_columns(x)
        self.y = np.asarray(y, dtype=np.float64)
        self._sums: dict[tuple[Exponents, bool], Fraction] = {}

    @property
    def x(self) -> np.ndarray:
        """The one feature's column (one feature only)."""
        (column,) = self.columns
        return column

    @property
    def data(self) -> tuple[np.ndarray, ...]:
        return (*self.columns, self.y)

    @property
    def n(self) -> int:
        return int(self.y.size)

    def total(self, *exponents: int, absolute: bool = False) -> Fraction:
        """sum over i of x_i1^a_1 ... x_ik^a_k y_i^b, one exponent per data column (the
        features, then y), in absolute values when `absolute`, exactly."""
        if absolute and all(e % 2 == 0 for e in exponents):
            absolute = False  # even powers: the same sum
        key = (tuple(exponents), absolute)
        if key not in self._sums:
            self._sums[key] = _data_sum(self._arrays(absolute), exponents, single=self._single)
        return self._sums[key]

    def _arrays(self, absolute: bool) -> tuple[np.ndarray, ...]:
        return tuple(np.abs(v) for v in self.data) if absolute else self.data

    @functools.cached_property
    def _single(self) -> bool:
        """Every value is a float32 (as the tape's float32 data always are)."""
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: not equal
            return all(
                np.array_equal(v.astype(np.float32).astype(np.float64), v) for v in self.data
            )

    def fractions(
        self, *, absolute: bool = False
    ) -> tuple[list[tuple[Fraction, ...]], list[Fraction]]:
        """Every sample as exact rationals (its features, and y), for a formula with no
        sums form."""
        *columns, y = self._arrays(absolute)
        rows = list(zip(*([Fraction(v) for v in c.tolist()] for c in columns), strict=True))
        return rows, [Fraction(v) for v in y.tolist()]


# The data sets seen last, each as (x, y, their DataSums). A report meets the same data
# as tuples (the Problem) and as arrays (the Samples); a million-entry tuple costs tens of
# milliseconds to hash, so lookups go by identity first and then by content.
_RECENT: list[tuple[object, object, DataSums]] = []
_RECENT_LIMIT = 4


def data_sums(
    x: Sequence[float] | Sequence[Sequence[float]] | np.ndarray, y: Sequence[float] | np.ndarray
) -> DataSums:
    """The one DataSums of these samples (`x`: one feature's column or several columns):
    the loss, the gradients, the optimum, the bounds and the plots need the same sums."""
    for seen_x, seen_y, sums in _RECENT:
        if seen_x is x and seen_y is y:
            return sums
    candidate = DataSums(x, y)
    found = next(
        (
            sums
            for _, _, sums in _RECENT
            if len(sums.data) == len(candidate.data)
            and all(np.array_equal(a, b) for a, b in zip(sums.data, candidate.data, strict=True))
        ),
        candidate,
    )
    _RECENT.append((x, y, found))  # keeps x and y alive, so their ids stay theirs
    del _RECENT[:-_RECENT_LIMIT]
    return found


class Evaluator:
    """Exact value, and rounding-error magnitude, of one formula at any parameter values.

    Both are polynomials in the parameters with exact rational coefficients (data sums
    times SymPy's coefficients), built once; a call evaluates that polynomial. The
    magnitude is the formula's :func:`~derive.symbolic.derivation.absolute_form` at |parameters|
    and |data|, as in the initial check.
    """

    def __init__(self, symbolic: Symbolic, formula: Formula, data: DataSums) -> None:
        self.symbolic = symbolic
        self.formula = formula
        self.data = data
        self._magnitude_formula = Formula(abs(formula.coefficient), absolute_form(formula.summand))

    # Each built on first use: an evaluator used for magnitudes only needs no other.
    @functools.cached_property
    def form(self) -> SumsForm | None:
        return sums_form(self.symbolic, self.formula)

    @functools.cached_property
    def polynomial(self) -> Polynomial | None:
        return _polynomial(self.symbolic, self.formula, self.data, absolute=False)

    @functools.cached_property
    def magnitude_polynomial(self) -> Polynomial | None:
        return _polynomial(self.symbolic, self._magnitude_formula, self.data, absolute=True)

    def value(self, parameters: Sequence[Fraction]) -> Fraction:
        if self.polynomial is None:
            return self._sample_by_sample(self.formula, parameters, absolute=False)
        return self.polynomial.at(parameters)

    def magnitude(self, parameters: Sequence[Fraction]) -> Fraction:
        absolute = [abs(p) for p in parameters]
        if self.magnitude_polynomial is None:
            return self._sample_by_sample(self._magnitude_formula, absolute, absolute=True)
        return self.magnitude_polynomial.at(absolute)

    def _sample_by_sample(
        self, formula: Formula, parameters: Sequence[Fraction], *, absolute: bool
    ) -> Fraction:
        """The slow route, for a formula that is not a polynomial in the parameters."""
        named = dict(zip(self.symbolic.parameters, parameters, strict=True))
        xs, ys = self.data.fractions(absolute=absolute)
        value, _ = evaluate_exact(self.symbolic, formula, named, xs, ys)
        return value


def exact_total(
    symbolic: Symbolic, summand: sp.Expr, parameters: Sequence[Fraction], data: DataSums
) -> Fraction | None:
    """The sum over the samples of summand at these parameters, exactly, from the data
    sums; None when the summand is not a polynomial with rational coefficients."""
    polynomial = _polynomial(symbolic, Formula(sp.Integer(1), summand), data, absolute=False)
    return None if polynomial is None else polynomial.at(parameters)


def _polynomial(
    symbolic: Symbolic, formula: Formula, data: DataSums, *, absolute: bool
) -> Polynomial | None:
    """{exponents of the parameters: exact coefficient} for the formula over this data."""
    terms = _summand_terms(tuple(symbolic.parameters.values()), symbolic.features, formula.summand)
    if terms is None:
        return None
    scale = Fraction(str(formula.coefficient.subs(N, data.n)))
    result = Polynomial()
    width = len(symbolic.features) + 1
    for powers, c in terms:
        key = powers[width:]
        term = scale * c * data.total(*powers[:width], absolute=absolute)
        result[key] = result.get(key, Fraction(0)) + term
    return result


@functools.lru_cache(maxsize=256)
def _summand_terms(
    parameters: tuple[sp.Symbol, ...], features: tuple[sp.Expr, ...], summand: sp.Expr
) -> tuple[tuple[Exponents, Fraction], ...] | None:
    """The summand as a polynomial in sample i's data and the parameters: (exponents of
    the data, then of the parameters; coefficient), or None when it is not one with
    rational coefficients. SymPy's part, the same for every data set: kept, since the
    draft and the report and the Hessian ask for the same summands."""
    data = (*features, Y_I)
    plain = sp.symbols(f"d_s0:{len(data)}")
    summand = summand.xreplace(dict(zip(data, plain, strict=True)))
    try:
        poly = sp.Poly(sp.expand(summand), *plain, *parameters)
    except sp.PolynomialError:
        return None
    if any(not c.is_Rational for c in poly.coeffs()):
        return None
    return tuple((tuple(powers), Fraction(str(c))) for powers, c in poly.terms())


# Beyond this many samples, data sums are formed with error-free float64 arithmetic
# (still exact) instead of one rational operation per sample.
FAST_SUM_SAMPLES = 2000


def _data_sum(columns: Sequence[np.ndarray], exponents: Sequence[int], *, single: bool) -> Fraction:
    """sum over i of the product of column_c[i]^exponent_c, exactly; `single` when every
    value is a float32."""
    size = columns[0].size
    used = [(c, e) for c, e in zip(columns, exponents, strict=True) if e]
    degree = sum(exponents)
    if not used:
        return Fraction(size)
    if size > FAST_SUM_SAMPLES and single and degree <= 2:
        # Two float32 mantissas (24 bits each) multiply exactly within float64's 53, and
        # float32's range squared stays far inside float64's: the products are exact.
        with np.errstate(all="raise"):
            product = np.ones(size)
            for column, exponent in used:
                product = product * column**exponent
            return exact_sum(Expansion.of(product), size)
    values = np.concatenate([c for c, _ in used])
    if size <= FAST_SUM_SAMPLES or not products_are_exact(values, degree):
        rows = zip(*([Fraction(v) for v in c.tolist()] for c, _ in used), strict=True)
        total = Fraction(0)
        for row in rows:
            term = Fraction(1)
            for value, (_, exponent) in zip(row, used, strict=True):
                term *= value**exponent
            total += term
        return total
    term = Expansion.of(1.0)
    for column, exponent in used:
        for _ in range(exponent):
            term = term * Expansion.of(column)
    return exact_sum(term, size)


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
