"""Reference values: what the tape's numbers should be, computed far more precisely.

Up to EXACT_LIMIT samples the reference is exact (rational arithmetic at the float
values the tape used). Beyond that, rational arithmetic gets slow (minutes for a
million samples), and the reference is computed with error-free float64
transformations and a correctly rounded sum (:mod:`derive.exact.expansion`): within
2^-53 relative of the exact value, which is 2^29 times finer than a float32 ULP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from ..common.i18n import Message
from ..symbolic.derivation import Formula, N, Symbolic, absolute_form
from .certified import Enclosure, enclose_samples, enclose_total, needs_balls
from .expansion import Expansion, is_safe, total
from .sums import as_columns, data_sums, exact_total

if TYPE_CHECKING:
    from ..problem.problem import Problem

EXACT_LIMIT = 2000


@dataclass(frozen=True)
class Samples:
    """The samples as the tape used them, as arrays and (lazily) as exact rationals.

    `sums` keeps the sums over the samples already computed on the fast path (see
    :func:`exact_sum`): the backward section needs some of the core's sums again.
    """

    columns: tuple[np.ndarray, ...]  # one per feature
    y: np.ndarray
    sums: dict[object, object] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def of(x: Sequence[float] | Sequence[Sequence[float]], y: Sequence[float]) -> Samples:
        """From one feature's column, or from the columns of several."""
        return Samples(as_columns(x), np.asarray(y, dtype=np.float64))

    @staticmethod
    def of_problem(problem: Problem) -> Samples:
        return Samples.of(problem.columns, problem.y)

    @property
    def x(self) -> np.ndarray:
        """The one feature's column (one feature only)."""
        (column,) = self.columns
        return column

    @property
    def n(self) -> int:
        return int(self.y.size)

    @property
    def data(self) -> tuple[np.ndarray, ...]:
        """Every column, the features then y: the data arguments of a sample function."""
        return (*self.columns, self.y)

    def absolute(self) -> Samples:
        return Samples(tuple(np.abs(c) for c in self.columns), np.abs(self.y))

    @cached_property
    def exact(self) -> bool:
        return self.n <= EXACT_LIMIT or not all(is_safe(c) for c in self.data)

    def fractions(self, index: int) -> tuple[Fraction, ...]:
        """Sample `index` (0-based) exactly: its features, then y."""
        return tuple(Fraction(float(c[index])) for c in self.data)


def method(samples: Samples, dtype: str) -> Message:
    """How the references of this report were computed, in a sentence for the reader:
    exact rationals, or error-free float64 transformations (Dekker's two-product and a
    correctly rounded sum, within 2^-53 relative of the exact value)."""
    return Message.of("method.exact" if samples.exact else "method.error_free", dtype=dtype)


def sample_values(
    symbolic: Symbolic,
    expr: sp.Expr,
    parameters: Mapping[str, Fraction],
    samples: Samples,
    indices: Sequence[int],
) -> list[Fraction]:
    """expr(parameters, x_i, y_i) exactly, for the chosen samples (0-based indices)."""
    if needs_balls(expr):  # exp, log, sigma: the midpoints of balls 1e-70 wide
        balls = enclose_samples(
            symbolic, expr, list(parameters.values()), samples.columns, samples.y, indices
        )
        return [ball.midpoint for ball in balls]
    function = symbolic.sample_function(expr)
    arguments = list(parameters.values())
    return [Fraction(function(*arguments, *samples.fractions(k))) for k in indices]


def enclosure(
    symbolic: Symbolic,
    formula: Formula,
    parameters: Mapping[str, Fraction],
    samples: Samples,
) -> Enclosure:
    """A formula beyond rational arithmetic over all samples, in a ball that holds the
    exact value (computed once per formula and parameters)."""
    key = ("ball", formula, frozenset(parameters.items()))
    if key not in samples.sums:
        values = list(parameters.values())
        samples.sums[key] = enclose_total(symbolic, formula, values, samples.columns, samples.y)
    found = samples.sums[key]
    assert isinstance(found, Enclosure)
    return found


def value(
    symbolic: Symbolic,
    formula: Formula,
    parameters: Mapping[str, Fraction],
    samples: Samples,
) -> Fraction:
    """coefficient(n) * sum of summand over all samples: exact, or to 2^-53 relative."""
    if needs_balls(formula.summand):
        return enclosure(symbolic, formula, parameters, samples).midpoint
    coefficient = Fraction(str(formula.coefficient.subs(N, samples.n)))
    if samples.exact:
        terms = sample_values(symbolic, formula.summand, parameters, samples, range(samples.n))
        return coefficient * sum(terms, Fraction(0))
    return coefficient * Fraction(exact_sum(symbolic, formula.summand, parameters, samples))


def exact_sum(
    symbolic: Symbolic,
    summand: sp.Expr,
    parameters: Mapping[str, Fraction],
    samples: Samples,
) -> float:
    """The sum of summand over all samples, exactly, then correctly rounded.

    Within 2^-53 relative of the exact sum. Computed once per summand and parameters.
    """
    key = (summand, frozenset(parameters.items()))
    if key not in samples.sums:
        # A polynomial in the data (the linear model's): a few exact data sums, shared
        # with the training checks, instead of an expansion of every term.
        named = [parameters[name] for name in symbolic.parameters]
        exact = exact_total(symbolic, summand, named, data_sums(samples.columns, samples.y))
        if exact is not None:
            samples.sums[key] = float(exact)  # correctly rounded
            return float(exact)
        function = symbolic.sample_function(summand)
        arguments = [Expansion.of(float(v)) for v in parameters.values()]
        summed = function(*arguments, *(Expansion.of(c) for c in samples.data))
        if not isinstance(summed, Expansion):  # a summand that does not depend on the samples
            summed = Expansion.of(float(summed))
        samples.sums[key] = total(summed, samples.n)
    found = samples.sums[key]
    assert isinstance(found, float)
    return found


def magnitude(
    symbolic: Symbolic,
    formula: Formula,
    parameters: Mapping[str, Fraction],
    samples: Samples,
) -> Fraction:
    """M: the formula computed on absolute values, which bounds its rounding error."""
    absolute = Formula(abs(formula.coefficient), absolute_form(formula.summand))
    parameters = {name: abs(v) for name, v in parameters.items()}
    magnitudes = samples.absolute()
    if samples.exact:
        return value(symbolic, absolute, parameters, magnitudes)
    # Every term is non-negative, so plain float64 has no cancellation to fear: its
    # relative error is below n * 2^-52 (summation and the few products per term).
    # Enlarging by that much keeps M an upper bound, which is all a bound needs.
    function = symbolic.sample_function(absolute.summand)
    terms = function(*(float(v) for v in parameters.values()), *magnitudes.data)
    terms = np.broadcast_to(terms, magnitudes.y.shape)  # a summand free of the data: n terms
    coefficient = Fraction(str(absolute.coefficient.subs(N, samples.n)))
    approximate = Fraction(float(np.sum(terms)))
    return coefficient * approximate * (1 + Fraction(samples.n + 8, 2**52))
