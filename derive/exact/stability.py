"""Which learning rates full-batch SGD can take, from the Hessian of the loss.

Near a point theta*, L(theta) ~ L* + 1/2 (theta - theta*)^T H (theta - theta*), and one
SGD step multiplies the error along each eigenvector of H by (1 - eta lambda_k).
The error shrinks in every direction exactly when |1 - eta lambda_k| < 1 for all k,
that is when

    eta < 2 / lambda_max(H),

and the slowest direction shrinks by rho = max_k |1 - eta lambda_k| per step, so
shrinking the error by a factor TOLERANCE takes about ln(1/TOLERANCE) / -ln(rho) steps
(about ln(1/TOLERANCE) / (eta lambda_min) when eta lambda_min is small).

H comes from the loss SymPy derived: each entry is the second derivative of the
summand, d^2/(dp dq), summed over the samples with the loss's coefficient, and
evaluated like every other formula (:class:`derive.exact.sums.Evaluator`: exactly, from the
data sums when the entry is a polynomial). For a loss quadratic in the parameters
(the linear model with the mean squared error) no entry depends on the parameters,
H is constant and the bound is global. Otherwise H is taken at the initial values
and the bound is local (:attr:`Stability.local`).

The eigenvalues are computed with mpmath at EIGEN_DIGITS significant digits from the
exact entries, so that even lambda_min of badly conditioned data (lambda_max / lambda_min
of 10^12 and more) is right to far more digits than the report shows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction

import sympy as sp

from ..problem.problem import Problem
from ..symbolic.derivation import Formula, Symbolic, latex
from .sums import Evaluator, data_sums

TOLERANCE = 1e-6  # the factor by which the slowest direction's error should shrink
SAFETY = 0.9  # the suggested learning rate stays this far below the bound
FAR = 10  # steps needed beyond this many times the requested: the rate alone won't do
EIGEN_DIGITS = 50


@dataclass(frozen=True)
class Hessian:
    """H = the matrix of second derivatives of the loss, as formulas and as numbers."""

    parameters: tuple[str, ...]
    formulas: tuple[tuple[Formula, ...], ...]  # SymPy's, for general n
    values: tuple[tuple[Fraction, ...], ...]  # exact, for this data (at `at` when local)
    local: bool  # some entry depends on the parameters: H at the initial values only

    @property
    def latex(self) -> str:
        rows = [[f.expression for f in row] for row in self.formulas]
        return latex(sp.Matrix(rows))

    @property
    def values_latex(self) -> str:
        from ..common.numbers import latex_number

        # Up to 6 x 6 (five features) ten digits fit the page; beyond, three do
        digits = 10 if len(self.values) <= 6 else 3
        rows = r" \\ ".join(" & ".join(latex_number(v, digits) for v in row) for row in self.values)
        return rf"\begin{{bmatrix}} {rows} \end{{bmatrix}}"


@dataclass(frozen=True)
class Stability:
    """The learning-rate bound of full-batch SGD for this loss and data, and what follows."""

    hessian: Hessian
    eigenvalues: tuple[float, ...]  # ascending
    learning_rate: float
    steps: int  # requested
    tolerance: float = TOLERANCE

    @property
    def lambda_max(self) -> float:
        return self.eigenvalues[-1]

    @property
    def lambda_min(self) -> float:
        return self.eigenvalues[0]

    @property
    def local(self) -> bool:
        return self.hessian.local

    @property
    def stable_lr(self) -> float | None:
        """2 / lambda_max; None when H has no positive eigenvalue (no bound from H).
        0 when lambda_max is beyond float64 (data near float64's limit): no rate is stable."""
        return 2 / self.lambda_max if self.lambda_max > 0 else None

    @property
    def stable(self) -> bool:
        return self.stable_lr is None or self.learning_rate < self.stable_lr

    @property
    def ratio(self) -> float | None:
        """eta / (2 / lambda_max): 1 or more diverges (infinite where lambda_max is)."""
        if self.stable_lr is None:
            return None
        return self.learning_rate / self.stable_lr if self.stable_lr > 0 else math.inf

    @property
    def suggested_lr(self) -> float | None:
        """SAFETY * 2 / lambda_max, rounded down to one significant digit."""
        return None if self.stable_lr is None else round_down(SAFETY * self.stable_lr)

    @property
    def condition(self) -> float:
        """lambda_max / lambda_min; infinite when H is singular (no unique optimum)."""
        if self.lambda_min <= 0:
            return math.inf
        return self.lambda_max / self.lambda_min

    @property
    def contraction(self) -> float:
        """rho = max_k |1 - eta lambda_k|: the slowest direction's factor per step."""
        return max(abs(1 - self.learning_rate * value) for value in self.eigenvalues)

    @property
    def steps_needed(self) -> float | None:
        """Steps to shrink the slowest direction's error by `tolerance`; None when it
        does not shrink (rho >= 1: unstable, or a flat direction)."""
        rho = self.contraction
        if not rho < 1:
            return None
        if rho == 0:
            return 1.0
        return math.log(1 / self.tolerance) / -math.log1p(rho - 1)

    @property
    def remaining(self) -> float | None:
        """rho^steps: the part of the slowest direction's initial error left after the
        requested steps (None when it does not shrink)."""
        rho = self.contraction
        return rho**self.steps if rho < 1 else None

    @property
    def steps_at_suggested(self) -> float | None:
        """steps_needed at the suggested learning rate (None without one)."""
        eta = self.suggested_lr
        if eta is None or eta <= 0:
            return None
        rho = max(abs(1 - eta * value) for value in self.eigenvalues)
        if not rho < 1:
            return None
        return 1.0 if rho == 0 else math.log(1 / self.tolerance) / -math.log1p(rho - 1)

    @property
    def rate_alone_too_slow(self) -> bool:
        """At the suggested rate the run would need far more steps than requested
        (more than FAR times): advice to lower the rate alone is no help."""
        needed = self.steps_at_suggested
        return needed is not None and needed > FAR * self.steps

    @property
    def too_few_steps(self) -> bool:
        """The requested steps cannot bring the slowest direction close."""
        needed = self.steps_needed
        return needed is not None and needed > self.steps


def round_down(value: float) -> float:
    """The largest number with one significant digit not above value (0.0956 -> 0.09)."""
    if value <= 0 or not math.isfinite(value):
        return value
    exponent = math.floor(math.log10(value))
    digit = Decimal(repr(value)).scaleb(-exponent).to_integral_value(rounding=ROUND_FLOOR)
    if digit < 1:  # log10 rounded up at an exact power of ten
        exponent -= 1
        digit = Decimal(repr(value)).scaleb(-exponent).to_integral_value(rounding=ROUND_FLOOR)
    return float(digit.scaleb(exponent))


def hessian(problem: Problem, symbolic: Symbolic, at: Mapping[str, float] | None = None) -> Hessian:
    """H of the loss over this data, by SymPy from the loss; at the initial values
    (or `at`) when it depends on the parameters."""
    names = tuple(symbolic.parameters)
    symbols = [symbolic.parameters[name] for name in names]
    loss = symbolic.loss
    formulas = tuple(
        tuple(Formula(loss.coefficient, d) for d in row)
        for row in _second_derivatives(loss.summand, tuple(symbols))
    )
    point = at if at is not None else problem.initial.values
    theta = [Fraction(point[name]) for name in names]
    data = data_sums(problem.columns, problem.y)
    values = tuple(
        tuple(Evaluator(symbolic, formula, data).value(theta) for formula in row)
        for row in formulas
    )
    local = any(f.summand.has(*symbols) for row in formulas for f in row)
    return Hessian(names, formulas, values, local)


@functools.lru_cache(maxsize=16)
def _second_derivatives(
    summand: sp.Expr, symbols: tuple[sp.Symbol, ...]
) -> tuple[tuple[sp.Expr, ...], ...]:
    """d^2 summand / dp dq for every pair: the same for every data set and point (the
    warning before training, the draft and the report ask for it)."""
    return tuple(tuple(sp.diff(summand, p, q) for q in symbols) for p in symbols)


def eigenvalues(matrix: Sequence[Sequence[Fraction]]) -> tuple[float, ...]:
    """The eigenvalues of a symmetric matrix, ascending, from its exact entries."""
    import mpmath

    with mpmath.workdps(EIGEN_DIGITS):
        entries = [[mpmath.mpf(v.numerator) / v.denominator for v in row] for row in matrix]
        values = mpmath.eigsy(mpmath.matrix(entries), eigvals_only=True)
        return tuple(sorted(float(v) for v in values))


def stability(problem: Problem, symbolic: Symbolic) -> Stability:
    """The learning-rate bound for this problem (from H at the initial values)."""
    h = hessian(problem, symbolic)
    return Stability(
        hessian=h,
        eigenvalues=eigenvalues(h.values),
        learning_rate=problem.training.learning_rate,
        steps=problem.training.steps,
    )


def rate_bound(problem: Problem, symbolic: Symbolic) -> Stability | None:
    """What bounds the learning rate for the problem's loss (its entry's curvature):
    its own Hessian ("hessian"); the Hessian of a loss that curves at least as much
    everywhere ("bounded": Huber's, by 1/2 r^2 on every sample); nothing ("none")."""
    from ..symbolic.derivation import build_symbolic

    loss = problem.loss_entry
    if loss.curvature == "hessian":
        return stability(problem, symbolic)
    if loss.curvature == "bounded" and loss.curvature_bound is not None:
        return stability(problem, build_symbolic(problem.model_entry, loss.curvature_bound))
    return None
