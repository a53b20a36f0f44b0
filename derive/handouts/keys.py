"""The answer key: every value the student works out, exactly at the printed decimals
(what the boxes show) and at their float32 roundings (what the tape uses), each checked
against ``tape.gradient`` and the SGD step within the rounding-error bound."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from fractions import Fraction

import numpy as np
import sympy as sp

from ..exact import reference, underflow
from ..exact.check import Bound, Check, compare, gamma_bound, rounding_bound
from ..exact.kinks import KinkWatch
from ..exact.reference import Samples
from ..exact.roundings import tape_roundings
from ..problem.problem import Dataset, Problem
from ..symbolic.derivation import Formula, N, Symbolic
from ..tape.gradient import TapeResult
from .facts import LEARNING_RATE, KeyCheck, KeyValues, SampleWork, Sheet, as_decimal


def key_values(
    symbolic: Symbolic,
    parameters: Mapping[str, Fraction],
    xs: Sequence[Sequence[Fraction]],
    ys: Sequence[Fraction],
    given: Dataset,
) -> KeyValues:
    """Every value of the key, in exact arithmetic, at the numbers given (`xs`: each
    feature's column; a sheet has a handful of samples, so every sum is exact)."""
    n = len(ys)
    rows_x = list(zip(*xs, strict=True))

    def per_sample(expr: sp.Expr) -> list[Fraction]:
        function = symbolic.sample_function(expr)
        return [
            Fraction(function(*parameters.values(), *row, y))
            for row, y in zip(rows_x, ys, strict=True)
        ]

    residuals = per_sample(symbolic.residual)
    squares = per_sample(symbolic.loss.summand)
    shares: dict[str, list[Fraction]] = {}
    gradients: dict[str, Fraction] = {}
    for name, derivation in symbolic.derivations.items():
        formula = derivation.result
        coefficient = Fraction(str(formula.coefficient.subs(N, n)))
        summands = per_sample(formula.summand)
        shares[name] = [coefficient * n * value for value in summands]
        gradients[name] = coefficient * sum(summands, Fraction(0))
    loss_coefficient = Fraction(str(symbolic.loss.coefficient.subs(N, n)))
    rows = tuple(
        SampleWork(
            i=k + 1,
            x=tuple(column[k] for column in given.columns),
            y=given.y[k],
            residual=residuals[k],
            square=squares[k],
            shares={name: values[k] for name, values in shares.items()},
        )
        for k in range(n)
    )
    return KeyValues(
        samples=rows,
        loss=loss_coefficient * sum(squares, Fraction(0)),
        gradients=gradients,
        updated={name: parameters[name] - LEARNING_RATE * gradients[name] for name in parameters},
    )


def tape_key(symbolic: Symbolic, problem: Problem) -> KeyValues:
    """The key at the float32 numbers the tape uses."""
    return key_values(
        symbolic,
        {name: Fraction(v) for name, v in problem.initial.values.items()},
        [[Fraction(v) for v in column] for column in problem.columns],
        [Fraction(v) for v in problem.y],
        problem.dataset,
    )


def hand_key(symbolic: Symbolic, problem: Problem, init: Mapping[str, float]) -> KeyValues:
    """The key at the decimals printed on the sheet: what the student gets by hand."""
    return key_values(
        symbolic,
        {name: as_decimal(v) for name, v in init.items()},
        [[as_decimal(v) for v in column] for column in problem.dataset.columns],
        [as_decimal(v) for v in problem.dataset.y],
        problem.dataset,
    )


def _sgd_on_tape(value: float, gradient: float, dtype: str) -> float:
    """What SGD does with the tape's gradient: var - lr * grad, in the variable's dtype."""
    kind = np.dtype(dtype).type
    rate = kind(float(LEARNING_RATE))
    return float(kind(value) - rate * kind(gradient))


def _means_agree(values: KeyValues, name: str | None) -> bool:
    n = len(values.samples)
    if name is None:
        return sum((s.square for s in values.samples), Fraction(0)) / n == values.loss
    return sum((s.shares[name] for s in values.samples), Fraction(0)) / n == values.gradients[name]


def check_key(symbolic: Symbolic, sheet: Sheet, tape: TapeResult) -> tuple[KeyCheck, ...]:
    """Each key value against the tape, with the report's rounding-error bounds.

    At the float32 numbers, the loss and the gradients are compared with
    ``tape.gradient``, and the SGD step with var - lr * grad computed in float32 from the
    tape's gradient, as SGD does. The printed values (worked from the decimals) must lie
    within the same tolerance of the float32 ones: storing a decimal as float32 moves it
    by at most u relative, and for the linear model each value is a polynomial of degree
    at most 3 in the inputs, so it moves by at most about 3uM, less than the bound (for
    another model this check says whether its values move as little). The per-sample values
    are checked through their means, which must be the printed means exactly.
    """
    problem, values, hand = sheet.problem, sheet.values, sheet.hand
    samples = Samples.of_problem(problem)
    parameters = {name: Fraction(v) for name, v in problem.initial.values.items()}
    dtype, n = problem.dtype, problem.n

    def bound_for(formula: Formula, key: str) -> Bound:
        magnitude = reference.magnitude(symbolic, formula, parameters, samples)
        flushes = underflow.at_initial_values(
            problem, symbolic, underflow.sensitivities(symbolic).of_quantity(key)
        )
        # k as in the report: the sum's depth (n - 1 for so few samples, in any
        # order) plus the roundings of one term, counted op by op.
        k = tape_roundings(n, dtype, tape.order, symbolic.model, symbolic.loss_definition)[key]
        return rounding_bound(dtype, magnitude, flushes, samples.exact, roundings=k)

    def entry(
        check: Check, exact: Fraction, printed: Fraction, name: str | None, mean: bool
    ) -> KeyCheck:
        return KeyCheck(
            check=check,
            printed=printed,
            printed_ok=abs(printed - exact) <= Fraction(check.tolerance),
            consistent=not mean or (_means_agree(values, name) and _means_agree(hand, name)),
        )

    loss = compare("L", values.loss, tape.loss, bound_for(symbolic.loss, "L"), dtype)
    # A residual near a kink leaves the gradients undecided (none on a drawn sheet: see
    # sheets._off_the_kinks; a --data sample may still sit there)
    kink = KinkWatch(symbolic, problem.columns, problem.y, dtype).near(list(parameters.values()))
    entries = [entry(loss, values.loss, hand.loss, None, True)]
    gradient_checks = {}
    for name, derivation in symbolic.derivations.items():
        check = compare(
            f"dL/d{name}",
            values.gradients[name],
            tape.gradients[name],
            bound_for(derivation.result, name),
            dtype,
            kink=kink,
        )
        gradient_checks[name] = check
        entries.append(entry(check, values.gradients[name], hand.gradients[name], name, True))
    rate32 = Fraction(float(np.dtype(dtype).type(float(LEARNING_RATE))))
    for name, check in gradient_checks.items():
        tape_update = _sgd_on_tape(problem.initial.values[name], tape.gradients[name], dtype)
        g_tape = Fraction(tape.gradients[name])
        # The tape's gradient error, scaled by eta; eta itself rounded to the dtype; then
        # two roundings (the product and the difference).
        propagated = LEARNING_RATE * Fraction(check.tolerance) + abs(rate32 - LEARNING_RATE) * abs(
            g_tape
        )
        magnitude = abs(parameters[name]) + rate32 * abs(g_tape)
        bound = gamma_bound(2, dtype, magnitude, underflow.update_sensitivity(rate32))
        bound = replace(bound, value=float(Fraction(bound.value) + propagated))
        update = compare(f"{name}1", values.updated[name], tape_update, bound, dtype)
        entries.append(entry(update, values.updated[name], hand.updated[name], name, False))
    return tuple(entries)
