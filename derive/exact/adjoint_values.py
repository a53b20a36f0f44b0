"""The adjoints of the backward pass, evaluated: exactly, in rational arithmetic at the
values the tape used (:func:`exact_references`), or for many samples in float64 with a
stated bound on their own error (:func:`fast_references`, ``FLOAT_ALLOWANCE``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from ..symbolic.adjoints import SymbolicBackward
from ..symbolic.derivation import Y_I, N, Symbolic, absolute_form
from .expansion import MAX_PAIR_PARTS, Expansion, divided, double_double
from .reference import exact_sum
from .roundings import power_of_two, roundings

if TYPE_CHECKING:
    from ..problem.problem import Problem
    from .reference import Samples


def exact_value(expr: sp.Expr, values: Mapping[sp.Basic, Fraction]) -> Fraction:
    """expr in rational arithmetic, with `values` for its symbols."""
    if expr in values:
        return values[expr]
    if expr.is_Rational:
        return Fraction(int(expr.p), int(expr.q))
    if isinstance(expr, sp.Add):
        return sum((exact_value(a, values) for a in expr.args), Fraction(0))
    if isinstance(expr, sp.Mul):
        result = Fraction(1)
        for factor in expr.args:
            result *= exact_value(factor, values)
        return result
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer:
        return exact_value(expr.base, values) ** int(expr.exp)
    if isinstance(expr, sp.Abs):
        return abs(exact_value(expr.args[0], values))
    if isinstance(expr, sp.sign):  # sign(0) = 0, as TensorFlow's
        inner = exact_value(expr.args[0], values)
        return Fraction((inner > 0) - (inner < 0))
    if isinstance(expr, sp.Piecewise):  # the first branch whose condition holds, exactly
        for value, condition in expr.args:
            if _holds(condition, values):
                return exact_value(value, values)
        raise NotImplementedError(f"no branch holds in {expr!r}")
    raise NotImplementedError(f"no exact evaluation for {expr!r}")


def chosen_branches(expr: sp.Expr, values: Mapping[sp.Basic, Fraction]) -> sp.Expr:
    """expr with every Piecewise replaced by the branch that holds at `values` (decided
    exactly): what one sample's term is, written with symbols."""

    def chosen(piecewise: sp.Piecewise) -> sp.Expr:
        for value, condition in piecewise.args:
            if _holds(condition, values):
                return value
        raise NotImplementedError(f"no branch holds in {piecewise!r}")

    return expr.replace(lambda e: isinstance(e, sp.Piecewise), chosen)


def _holds(condition: sp.Basic, values: Mapping[sp.Basic, Fraction]) -> bool:
    """A branch's condition decided in rational arithmetic (a <= b, or True)."""
    if condition is sp.true:
        return True
    if isinstance(condition, sp.LessThan):
        return exact_value(condition.lhs, values) <= exact_value(condition.rhs, values)
    raise NotImplementedError(f"no exact decision for {condition!r}")


@dataclass(frozen=True)
class Reference:
    """Adjoint of one node per sample (one entry for scalars), and its magnitude M.

    Exact unless `allowance` > 0: then each value is within allowance * M of the exact one.
    """

    values: tuple[Fraction, ...]
    magnitudes: tuple[Fraction, ...]
    allowance: Fraction = Fraction(0)


def sample_data(problem: Problem, symbolic: Symbolic) -> list[dict[sp.Expr, Fraction]]:
    """Each sample's data leaves (its features and y) as exact values, by symbol."""
    columns = [problem.exact(column) for column in problem.columns]
    return [
        {**dict(zip(symbolic.features, row, strict=True)), Y_I: y}
        for row, y in zip(zip(*columns, strict=True), problem.exact(problem.y), strict=True)
    ]


def exact_references(
    backward: SymbolicBackward,
    problem: Problem,
    symbolic: Symbolic,
) -> dict[str, Reference]:
    """The symbolic adjoints evaluated exactly at the dtype values the tape used."""
    parameters = {symbolic.parameters[k]: Fraction(v) for k, v in problem.initial.values.items()}
    samples = [{**parameters, **data} for data in sample_data(problem, symbolic)]
    magnitude_samples = [{k: abs(v) for k, v in sample.items()} for sample in samples]
    vertices = {v.name: v for v in backward.graph}
    references: dict[str, Reference] = {}
    for name, adjoint in backward.adjoints.items():
        term = backward.leaf_form(adjoint).subs(N, problem.n)
        magnitude = absolute_form(term)
        values = [exact_value(term, s) for s in samples]
        magnitudes = [exact_value(magnitude, s) for s in magnitude_samples]
        if name in backward.broadcast:
            values = [sum(values, Fraction(0))]
            magnitudes = [sum(magnitudes, Fraction(0))]
        elif not vertices[name].per_sample:
            values, magnitudes = values[:1], magnitudes[:1]
        references[name] = Reference(tuple(values), tuple(magnitudes))
    return references


def exact_forward_values(
    backward: SymbolicBackward, problem: Problem, symbolic: Symbolic
) -> dict[str, tuple[Fraction, ...]]:
    """Every node's exact value (for tests and for comparison with the tape's values)."""
    parameters = {symbolic.parameters[k]: Fraction(v) for k, v in problem.initial.values.items()}
    data = sample_data(problem, symbolic)
    values: dict[str, tuple[Fraction, ...]] = {}
    for vertex in backward.graph:
        if vertex.op is not None and vertex.op.reduces:
            (term,) = vertex.inputs
            values[vertex.name] = (vertex.op.forward(list(values[term])),)
            continue
        expression = backward.expressions[vertex.name]
        row = [exact_value(expression, {**parameters, **sample}) for sample in data]
        values[vertex.name] = tuple(row if vertex.per_sample else row[:1])
    return values


# A per-sample adjoint is a short polynomial in W, b, x_i, y_i over an integer. Its
# terms are held exactly as float64 expansions, reduced to a pair high + low of float64
# numbers and divided by the integer (derive.exact.expansion): within 2^-94 M_i of the exact
# value, M_i its magnitude. FLOAT_ALLOWANCE * M_i, added to each per-sample tolerance,
# covers that; it is 2^37 times finer than a float64 ULP of M_i, so negligible for a
# float32 or a float64 tape alike.
FLOAT_ALLOWANCE = Fraction(1, 2**90)


# Magnitudes are plain float64, on absolute values: up to this many roundings each, an
# enlargement by 1 + 2^-47 keeps them upper bounds.
MAX_FLOAT_ROUNDINGS = 16


# The error of a correctly rounded sum of exactly held terms (half a float64 ULP),
# doubled as in section 6 (reference.rounding_bound).
SUM_ALLOWANCE = Fraction(1, 2**52)


@dataclass(frozen=True)
class FloatReference:
    """Adjoint of one node at every sample as float64 pairs (for many samples).

    Each value high_i + low_i is within `allowance` * M_i of the exact one;
    `magnitudes` are upper bounds of the exact M_i. An adjoint that is the same for
    every sample (1/n) is held as 0-d arrays; NumPy broadcasts them.
    """

    high: np.ndarray
    low: np.ndarray
    magnitudes: np.ndarray
    allowance: Fraction

    def at(self, index: int) -> Fraction:
        return Fraction(_entry(self.high, index)) + Fraction(_entry(self.low, index))

    def magnitude(self, index: int) -> float:
        return _entry(self.magnitudes, index)


def _entry(values: np.ndarray, index: int) -> float:
    return float(values[index] if values.ndim else values)


@dataclass(frozen=True)
class _Split:
    """A per-sample term as numerator / denominator, ready for float64 evaluation."""

    numerator: sp.Expr  # a polynomial with integer coefficients in the leaves
    denominator: int
    roundings: int  # k64: roundings of numerator / denominator in float64


def _split(term: sp.Expr, symbolic: Symbolic) -> _Split | None:
    """term = numerator / denominator, or None when float64 cannot evaluate it as stated."""
    leaves = [*symbolic.parameters.values(), *symbolic.features, Y_I]
    numerator, denominator = sp.fraction(sp.together(term))
    if not (denominator.is_Integer and denominator > 0 and numerator.is_polynomial(*leaves)):
        return None
    numbers = [a for a in numerator.atoms(sp.Number) if not a.is_Integer or abs(a) >= 2**53]
    if numbers:
        return None
    k = roundings(numerator, dict.fromkeys(leaves, 0), "float64")
    k += 0 if power_of_two(denominator) else 1
    if k > MAX_FLOAT_ROUNDINGS:
        return None
    return _Split(numerator, int(denominator), k)


def _on_samples(value: object, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))


def fast_references(
    backward: SymbolicBackward,
    problem: Problem,
    symbolic: Symbolic,
    samples: Samples,
) -> dict[str, Reference | FloatReference] | None:
    """The symbolic adjoints at every sample, with float64 arrays and a bounded error.

    Every term is held exactly as a float64 expansion (:mod:`derive.exact.expansion`).
    Per-sample adjoints: reduced to pairs of float64 arrays (``FloatReference``). A
    scalar used by every sample: summed with a correctly rounded sum. Other scalars:
    exactly. Magnitudes are float64 on absolute values, enlarged so that they stay upper
    bounds. None when some adjoint is not a short polynomial over an integer (the caller
    then takes the exact path).
    """
    n = problem.n
    splits = {}
    for name, adjoint in backward.adjoints.items():
        split = _split(backward.leaf_form(adjoint).subs(N, n), symbolic)
        if split is None:
            return None
        splits[name] = split
    exact_parameters = {
        name: Fraction(problem.initial.values[name]) for name in symbolic.parameters
    }
    parameters = [float(v) for v in exact_parameters.values()]
    absolute = [abs(v) for v in parameters]
    data_abs = samples.absolute().data
    leaves = [Expansion.of(v) for v in (*parameters, *samples.data)]
    pairs: dict[sp.Expr, tuple[np.ndarray, np.ndarray] | None] = {}

    def pair(numerator: sp.Expr) -> tuple[np.ndarray, np.ndarray] | None:
        """numerator at every sample as high + low; None if it has too many parts."""
        if numerator not in pairs:
            held = symbolic.sample_function(numerator)(*leaves)
            if not isinstance(held, Expansion):  # it does not depend on the samples
                held = Expansion.of(float(held))
            too_many = len(held.parts) > MAX_PAIR_PARTS
            pairs[numerator] = None if too_many else double_double(held)
        return pairs[numerator]

    vertices = {v.name: v for v in backward.graph}
    per_sample = [k for k in splits if vertices[k].per_sample and k not in backward.broadcast]
    if any(pair(splits[name].numerator) is None for name in per_sample):
        return None
    references: dict[str, Reference | FloatReference] = {}
    shared: dict[_Split, FloatReference] = {}
    for name, split in splits.items():
        magnitude = symbolic.sample_function(absolute_form(split.numerator))
        if name in backward.broadcast:
            summed = exact_sum(symbolic, split.numerator, exact_parameters, samples)
            value = Fraction(summed) / split.denominator
            # n non-negative terms of k64 roundings each: below (n + k64) 2^-53 relative.
            terms = _on_samples(magnitude(*absolute, *data_abs), n)
            enlarged = 1 + Fraction(n + split.roundings + 8, 2**52)
            bound = Fraction(float(np.sum(terms))) * enlarged / split.denominator
            references[name] = Reference((value,), (bound,), SUM_ALLOWANCE)
        elif not vertices[name].per_sample:
            first = dict(zip((*symbolic.features, Y_I), samples.fractions(0), strict=True))
            exact_leaves = {symbolic.parameters[k]: v for k, v in exact_parameters.items()}
            at_first = {**exact_leaves, **first}
            value = exact_value(split.numerator, at_first) / split.denominator
            bound = exact_value(
                absolute_form(split.numerator), {k: abs(v) for k, v in at_first.items()}
            )
            references[name] = Reference((value,), (bound / split.denominator,))
        else:
            # Nodes with the same adjoint (r_i, y_hat_i, (W x)_i) share one reference.
            if split not in shared:
                magnitudes = magnitude(*absolute, *data_abs)
                shared[split] = _float_reference(split, pair(split.numerator), magnitudes)
            references[name] = shared[split]
    return references


def _float_reference(
    split: _Split, pair: tuple[np.ndarray, np.ndarray] | None, magnitudes: object
) -> FloatReference:
    """numerator / denominator from the numerator's pair and its magnitudes on |leaves|."""
    assert pair is not None
    high, low = pair
    terms = np.asarray(magnitudes, dtype=np.float64)
    if split.denominator != 1:
        high, low = divided(high, low, split.denominator)
        terms = terms / split.denominator
    if split.roundings == 0:  # nothing rounded: exact values and magnitudes
        return FloatReference(high, low, terms, Fraction(0))
    # Computed with k64 <= 16 roundings, each magnitude is at least M_i (1 - 2^-49);
    # 1 + 2^-47 (itself rounded once) lifts it above M_i.
    return FloatReference(high, low, terms * (1 + 2.0**-47), FLOAT_ALLOWANCE)
