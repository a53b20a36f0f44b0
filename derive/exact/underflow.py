"""What flushing tiny numbers to zero can cost: the S of the term (1 + gamma_k) lambda S.

On the CPU, TensorFlow computes with denormals-are-zero and flush-to-zero: a number
below the dtype's smallest normal number lambda (2^-126 for float32) is read as 0,
and a result below lambda is written as 0. Each such flush loses less than lambda, on
top of the relative rounding that gamma_k M accounts for (:mod:`derive.exact.check`), and
what is lost travels on: unchanged through a sum, multiplied by the other operand
through a product. So a gradient can be off by many times lambda: a residual flushed
to zero and then multiplied by x_i = 1000 loses up to 1000 lambda.

S follows those losses through the tape's graph, in the order TensorFlow computes
(the forward pass; each adjoint as upstream times local derivative; the sum over the
samples for a scalar every sample uses), on absolute values. With A a value's
magnitude (its computation on absolute values) and S its sensitivity:

- an input (a parameter or a data value) may be flushed itself: S = 1;
- a sum or difference: S_a + S_b + 1 (the result may be flushed too);
- a product: S_a A_b + A_a S_b + lambda S_a S_b + 1, because
  |a' b' - a b| <= |a' - a| |b| + |a| |b' - b| + |a' - a| |b' - b|;
- the mean: the sum's S (n - 1 additions, each flushed at most once) over n, + 1;
- a constant (2, 1/n) is exact or rounded, never flushed: S = 0, also for a product of
  two constants.

The tape's value is then within gamma_k M + (1 + gamma_k) lambda S of the exact one:
S is built from exact magnitudes, and every rounding on the way multiplies what it
carries by at most 1 + u, k of them at most. S is a polynomial in |W|, |b|, |x_i|,
|y_i|, n and lambda, derived once per model and loss; it is evaluated exactly from the
data sums (:mod:`derive.exact.sums`), or per sample in float64 and rounded up.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from ..common.numbers import round_up
from ..models.registry import Loss, Model
from ..symbolic.adjoints import (
    SymbolicBackward,
    constant_symbols,
    data_leaves,
    derive_adjoints,
    graph_of,
    op_vertices,
)
from ..symbolic.derivation import Y_I, Formula, N, Symbolic
from .adjoint_values import exact_value
from .check import SMALLEST_NORMAL
from .sums import Evaluator, as_columns, data_sums, sample_rows
from .upper import magnitudes_above

if TYPE_CHECKING:
    from ..problem.problem import Problem

LAMBDA = sp.Symbol("lambda", positive=True)  # the dtype's smallest normal number

# Float64 evaluation of S per sample: non-negative terms, a few dozen roundings each,
# so the result is low by less than 2^-45 relative; this factor makes it an upper bound.
_ROUND_UP = 1 + 2.0**-40


@dataclass(frozen=True)
class Spread:
    """A value's magnitude A and sensitivity S, in the leaves taken at absolute values.

    Plain arithmetic on Spreads applies the rules above, so an op's forward function
    (plain arithmetic too) computes them.
    """

    magnitude: sp.Expr
    sensitivity: sp.Expr

    @staticmethod
    def of(value: object) -> Spread:
        if isinstance(value, Spread):
            return value
        return Spread(abs(sp.sympify(value)), sp.Integer(0))  # an exact constant

    def __add__(self, other: object) -> Spread:
        other = Spread.of(other)
        return Spread(self.magnitude + other.magnitude, self.sensitivity + other.sensitivity + 1)

    # On absolute values a difference is a sum, and a sign change is exact.
    __radd__ = __sub__ = __rsub__ = __add__

    def __neg__(self) -> Spread:
        return self

    def __abs__(self) -> Spread:  # exact, and |a| is flushed exactly when a is
        return self

    @property
    def constant(self) -> bool:
        """An exact constant such as 2 or 1/n (it depends on no input)."""
        return self.sensitivity == 0 and self.magnitude.free_symbols <= {N}

    def __mul__(self, other: object) -> Spread:
        other = Spread.of(other)
        # A product of two constants (the mean's 1 times 1/n) is no number near lambda
        # for any n a report can hold: it is rounded, never flushed.
        # (Not so for a tiny constant of a loss, such as Huber's delta times 1/n.)
        both = self.constant and other.constant
        at_least_one_over_n = both and (self.magnitude * other.magnitude).subs(N, 1) >= 1
        flush = 0 if at_least_one_over_n else 1
        return Spread(
            self.magnitude * other.magnitude,
            self.sensitivity * other.magnitude
            + self.magnitude * other.sensitivity
            + LAMBDA * self.sensitivity * other.sensitivity
            + flush,
        )

    __rmul__ = __mul__

    def compared(self) -> Spread:
        """A comparison's flag (LessEqual): exactly 0 or 1, never flushed."""
        return Spread(sp.Integer(1), sp.Integer(0))

    def either(self, other: object) -> Spread:
        """One of two values, chosen per sample (SelectV2): with no side known, both
        added, which bounds either one."""
        other = Spread.of(other)
        return Spread(self.magnitude + other.magnitude, self.sensitivity + other.sensitivity)

    def __pow__(self, power: int) -> Spread:
        if int(power) != power or power < 1:
            raise NotImplementedError(f"no underflow bound for a power {power}")
        return functools.reduce(operator.mul, [self] * int(power))


def _any_order(factors: Sequence[Spread]) -> Spread:
    """A product of three or more factors, multiplied in an order TensorFlow chooses.

    The operands' losses: sum_j S_j prod_(l != j) (A_l + lambda S_l), by telescoping.
    Each of the m - 1 partial products may be flushed and is then multiplied by some of
    the other factors, at most prod_l (1 + A_l + lambda S_l).
    """
    grown = [f.magnitude + LAMBDA * f.sensitivity for f in factors]
    carried = sp.Add(
        *(
            f.sensitivity * sp.Mul(*(g for j, g in enumerate(grown) if j != i))
            for i, f in enumerate(factors)
        )
    )
    flushed = (len(factors) - 1) * sp.Mul(*(1 + g for g in grown))
    return Spread(sp.Mul(*(f.magnitude for f in factors)), carried + flushed)


def _walk(expr: sp.Expr, known: Mapping[sp.Basic, Spread]) -> Spread:
    """The Spread of a local derivative, written in the nodes' symbols."""
    if expr in known:
        return known[expr]
    if expr.free_symbols <= {N}:
        return Spread.of(expr)  # a constant, such as 2 or 1/n
    if isinstance(expr, sp.Add):
        return functools.reduce(operator.add, (_walk(a, known) for a in expr.args))
    if isinstance(expr, sp.Mul):
        factors = [_walk(a, known) for a in expr.args]
        return functools.reduce(operator.mul, factors) if len(factors) <= 2 else _any_order(factors)
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        return _walk(expr.base, known) ** int(expr.exp)
    if isinstance(expr, sp.Piecewise):  # SelectV2's choice: either branch
        branches = [_walk(value, known) for value, _ in expr.args]
        return functools.reduce(Spread.either, branches)
    if isinstance(expr, sp.sign):
        # -1, 0 or 1, and never flushed; a residual flushed to 0 (sign 0) lies within
        # its own bound of 0, which exact/kinks.py makes inconclusive
        return Spread(sp.Integer(1), sp.Integer(0))
    raise NotImplementedError(f"no underflow bound for {expr!r}")


@dataclass(frozen=True)
class Sensitivity:
    """S of one value: `summand` summed over the samples plus `constant` (when `summed`),
    or `summand` at each sample (a per-sample value; also a scalar, then at any sample).

    `summand` is in the parameters, x_i and y_i (all at absolute values), n and lambda;
    `constant` in n.
    """

    summand: sp.Expr
    constant: sp.Expr
    summed: bool

    def formula(self, n: int, dtype: str) -> Formula:
        """The summand for this n and dtype, as a Formula with coefficient 1."""
        lam = Fraction(SMALLEST_NORMAL[dtype])
        values = {N: n, LAMBDA: sp.Rational(lam.numerator, lam.denominator)}
        return Formula(sp.Integer(1), sp.expand(self.summand.xreplace(values)))

    def constant_at(self, n: int) -> Fraction:
        value = sp.Rational(self.constant.subs(N, n))
        return Fraction(int(value.p), int(value.q))


@dataclass(frozen=True)
class Sensitivities:
    """S of every value a report checks, for one model and loss."""

    loss: Sensitivity  # the loss's forward value
    adjoints: Mapping[str, Sensitivity]  # node -> its adjoint, as the tape computes it

    def of_quantity(self, key: str) -> Sensitivity:
        """The loss's S for "L", a gradient's for the parameter's name."""
        return self.loss if key == "L" else self.adjoints[key]


# Derived once per model and loss entry (a Symbolic holds mappings, so it is not a cache
# key; its entries are, and two entries registered under one name never share one).
_DERIVED: dict[tuple[Model, Loss], Sensitivities] = {}


def sensitivities(symbolic: Symbolic) -> Sensitivities:
    """S for the loss and every adjoint of the symbolic's graph."""
    key = (symbolic.model, symbolic.loss_definition)
    if key not in _DERIVED:
        graph = graph_of(symbolic.model, symbolic.loss_definition)
        _DERIVED[key] = _derive(derive_adjoints(graph, symbolic), symbolic)
    return _DERIVED[key]


def _derive(backward: SymbolicBackward, symbolic: Symbolic) -> Sensitivities:
    leaves = {
        **symbolic.parameters,
        **data_leaves(symbolic.model),
        **constant_symbols(symbolic.loss_definition),
    }
    values: dict[str, Spread] = {}
    loss: Sensitivity | None = None
    for vertex in backward.graph:
        if vertex.op is None:
            values[vertex.name] = (
                Spread.of(leaves[vertex.name])  # a loss's exact constant: never flushed
                if vertex.kind == "constant"
                else Spread(leaves[vertex.name], sp.Integer(1))
            )
        elif vertex.op.reduces:
            if vertex is not backward.graph[-1]:
                raise NotImplementedError("a mean inside the graph has no underflow bound")
            (term,) = vertex.inputs
            loss = Sensitivity(values[term].sensitivity / N, (N - 1) / N + 1, summed=True)
        else:
            values[vertex.name] = vertex.op.forward(*(values[name] for name in vertex.inputs))
    assert loss is not None
    known = {backward.symbols[name]: spread for name, spread in values.items()}

    contributions: dict[str, list[Spread]] = {backward.output: [Spread.of(1)]}
    for consumer in reversed(op_vertices(backward.graph)):
        if not consumer.watched:
            continue  # computed from the data alone: no adjoint flows through it
        upstream = functools.reduce(operator.add, contributions[consumer.name])
        for name in consumer.inputs:
            local = backward.locals.get((consumer.name, name))
            if local is None:
                continue
            # A local derivative of +-1 passes the upstream adjoint on, with no operation.
            passed = upstream if local in (1, -1) else upstream * _walk(local, known)
            contributions.setdefault(name, []).append(passed)

    adjoints = {}
    for name, parts in contributions.items():
        spread = functools.reduce(operator.add, parts)
        if name in backward.broadcast:  # the tape sums the n terms: n - 1 additions
            adjoints[name] = Sensitivity(spread.sensitivity, N - 1, summed=True)
        else:
            adjoints[name] = Sensitivity(spread.sensitivity, sp.Integer(0), summed=False)
    return Sensitivities(loss, adjoints)


def node_sensitivity(symbolic: Symbolic, node: str, dtype: str) -> sp.Expr:
    """S of one per-sample node's forward value, in |parameters|, |x_i|, |y_i|."""
    backward = derive_adjoints(graph_of(symbolic.model, symbolic.loss_definition), symbolic)
    leaves = {
        **symbolic.parameters,
        **data_leaves(symbolic.model),
        **constant_symbols(symbolic.loss_definition),
    }
    values: dict[str, Spread] = {}
    for vertex in backward.graph:
        if vertex.op is None:
            values[vertex.name] = (
                Spread.of(leaves[vertex.name])  # a loss's exact constant: never flushed
                if vertex.kind == "constant"
                else Spread(leaves[vertex.name], sp.Integer(1))
            )
        elif not vertex.op.reduces:
            values[vertex.name] = vertex.op.forward(*(values[n] for n in vertex.inputs))
    lam = Fraction(SMALLEST_NORMAL[dtype])
    return values[node].sensitivity.xreplace({LAMBDA: sp.Rational(lam.numerator, lam.denominator)})


def update_sensitivity(learning_rate: Fraction) -> Fraction:
    """S of an SGD update theta - eta g: theta and g may each be read as 0 (g's loss
    then multiplied by eta), and the product and the difference may each be flushed."""
    return 1 + learning_rate + 2


# ---------------------------------------------------------------------------------------
# Evaluation


class SensitivityEvaluator:
    """S of one summed quantity at any parameter values, exactly, for one data set:
    a polynomial in |W| and |b| whose coefficients are data sums, built once (the
    training checks evaluate it at every step)."""

    def __init__(
        self,
        sensitivity: Sensitivity,
        symbolic: Symbolic,
        x: Sequence[float] | Sequence[Sequence[float]],
        y: Sequence[float],
        dtype: str,
    ) -> None:
        """`x`: one feature's values, or the columns of several."""
        if not sensitivity.summed:
            raise ValueError("a per-sample sensitivity has no total")
        n = len(y)
        self._sum = Evaluator(symbolic, sensitivity.formula(n, dtype), data_sums(x, y))
        self._constant = sensitivity.constant_at(n)

    def at(self, parameters: Sequence[Fraction]) -> Fraction:
        return self._sum.magnitude(parameters) + self._constant

    def above(self, points: np.ndarray) -> np.ndarray | None:
        """Upper bounds of S at each row of parameter values (float64); None when S is
        not a polynomial in them."""
        sums = magnitudes_above(self._sum, points)
        if sums is None:
            return None
        return np.nextafter(sums + round_up(self._constant), np.inf)


def total(
    sensitivity: Sensitivity,
    symbolic: Symbolic,
    parameters: Sequence[Fraction],
    x: Sequence[float] | Sequence[Sequence[float]],
    y: Sequence[float],
    dtype: str,
) -> Fraction:
    """S of a summed quantity at these parameters, exactly."""
    return SensitivityEvaluator(sensitivity, symbolic, x, y, dtype).at(parameters)


def at_initial_values(problem: Problem, symbolic: Symbolic, sensitivity: Sensitivity) -> Fraction:
    """S of a summed quantity at the problem's initial values, exactly."""
    parameters = [Fraction(problem.initial.values[name]) for name in symbolic.parameters]
    return total(sensitivity, symbolic, parameters, problem.columns, problem.y, problem.dtype)


def per_sample_exact(
    sensitivity: Sensitivity,
    symbolic: Symbolic,
    parameters: Sequence[Fraction],
    x: Sequence[Fraction] | Sequence[Sequence[Fraction]],
    y: Sequence[Fraction],
    dtype: str,
) -> list[Fraction]:
    """S at each sample, exactly (a few samples; `x`: each one's feature or features)."""
    summand = sensitivity.formula(len(y), dtype).summand
    named = {s: abs(v) for s, v in zip(symbolic.parameters.values(), parameters, strict=True)}
    return [
        exact_value(
            summand,
            {**named, **dict(zip(symbolic.features, map(abs, row), strict=True)), Y_I: abs(yi)},
        )
        for row, yi in zip(sample_rows(x), y, strict=True)
    ]


def per_sample_bounds(
    sensitivity: Sensitivity,
    symbolic: Symbolic,
    parameters: Sequence[float],
    x: np.ndarray | Sequence[np.ndarray],
    y: np.ndarray,
    dtype: str,
) -> np.ndarray:
    """S at each sample in float64, rounded up (many samples; `x`: one feature's values
    or the columns of several)."""
    function = symbolic.sample_function(sensitivity.formula(y.size, dtype).summand)
    columns = (np.abs(c) for c in as_columns(x))
    values = function(*(abs(p) for p in parameters), *columns, np.abs(y))
    return np.broadcast_to(np.asarray(values, dtype=np.float64) * _ROUND_UP, y.shape)
