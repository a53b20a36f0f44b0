"""The training run, checked step by step, as facts for the report.

At every step s = 0, 1, ..., N the tape's loss and gradients are compared with exact
references at the parameter values the tape held (as in the initial check), and for
s >= 1 the parameters after ``apply_gradients`` are compared with the update rule
applied to the previous values,

    theta_s = theta_{s-1} - eta * g_{s-1},

with a tolerance from the rounding error of that update (:func:`update_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

from .check import Bound, Check, compare, rounding_bound
from .numbers import latex_number
from .problem import Problem
from .sums import Evaluator, affine_solution
from .symbolic import X_I, Formula, Symbolic, latex
from .tape import Trace

# The optimizer keeps the learning rate in a float32 variable, whatever the dtype of
# the parameters, and computes theta - fl(eta32 * g): three roundings (eta to float32,
# the product, the difference), each by at most 2^-24 relative.
UPDATE_ROUNDINGS = 3
OPTIMIZER_UNIT_ROUNDOFF = Fraction(1, 2**24)


@dataclass(frozen=True)
class UpdateRule:
    """theta_{t+1} = theta_t - eta * dL/dtheta, for one parameter, and its first step."""

    parameter: str
    general: str  # LaTeX: W_{t+1} = W_{t} - \eta \frac{\partial L}{\partial W}
    derived: str  # LaTeX: the same with the derived gradient put in
    first_step: str  # LaTeX: W_{1} = <W_0> - <eta> (<g_0>) = <exact>; "" when N = 0
    first_check: Check | None  # the tape's W_1 against that value


@dataclass(frozen=True)
class TrainingRow:
    """One displayed step: the values the tape held and computed there."""

    step: int
    parameters: Mapping[str, float]
    loss: float  # the tape's
    reference: Mapping[str, float]  # exact dL/dtheta at this step
    tape: Mapping[str, float]  # the tape's dL/dtheta
    worst_ulps: float  # the largest ULP distance of any check up to this step
    ok: bool  # every check up to this step passed
    finite: bool = True


@dataclass(frozen=True)
class Failure:
    step: int
    check: Check


@dataclass(frozen=True)
class Optimum:
    """The closed-form least-squares solution (gradient = 0), exact, and how far training got."""

    parameters: Mapping[str, float]
    loss: float
    distance: Mapping[str, float]  # final value - optimum
    loss_gap: float  # final loss - optimal loss, exact, at the tape's final values


@dataclass(frozen=True)
class Series:
    """Per-step values for the plots, up to the last step with finite values."""

    steps: tuple[int, ...]
    parameters: Mapping[str, tuple[float, ...]]
    loss: tuple[float, ...]
    gradients: Mapping[str, tuple[float, ...]]


@dataclass(frozen=True)
class TrainingFacts:
    steps: int  # requested
    learning_rate: float  # as given
    learning_rate_held: float  # as the optimizer holds it
    display_step: int
    engine: str
    rules: tuple[UpdateRule, ...]
    sums_forms: Mapping[str, str]  # LaTeX of the fast exact form of L and each gradient
    sums_forms_verified: bool
    gradient_bound: Bound  # at the initial values, for the text
    update_roundings: int
    update_unit_roundoff: float
    steps_checked: int  # steps s >= 1 whose update and gradients were checked
    checks_made: int
    failed_checks: int
    bit_exact_updates: int  # updates equal bit for bit to fl(theta - fl(eta32 * g))
    updates_checked: int
    ok: bool
    first_failure: Failure | None
    diverged_at: int | None  # first step with a non-finite value
    worst: Failure | None  # the check with the largest ULP distance
    max_ulps: float
    max_rel_error: float
    max_update_ulps: float
    final_step: int  # the last step with finite values
    final: Mapping[str, float]
    final_loss: float
    optimum: Optimum | None
    optimum_note: str  # why there is no optimum, when there is none
    rows: tuple[TrainingRow, ...]
    series: Series
    # For the plots: the loss as a polynomial in the parameters for this data (the
    # coefficients are data sums), and the prediction in x and the parameters.
    loss_polynomial: Mapping[tuple[int, ...], float]
    prediction_polynomial: Mapping[tuple[int, ...], float] | None

    @property
    def first_failing_step(self) -> int | None:
        if self.first_failure is not None:
            return self.first_failure.step
        return self.diverged_at


def update_bound(previous: Fraction, change: Fraction) -> Bound:
    """|fl(theta - fl(eta32 g)) - (theta - eta g)| <= gamma_3 (|theta| + |eta g|).

    With theta' = theta (1 + d2) - eta g (1 + d0)(1 + d1)(1 + d2) and every |d| <= u,
    the error is at most u |theta| + gamma_3 |eta g|.
    """
    u = OPTIMIZER_UNIT_ROUNDOFF
    k = UPDATE_ROUNDINGS
    gamma = k * u / (1 - k * u)
    magnitude = abs(previous) + abs(change)
    return Bound(k, float(u), float(gamma), float(magnitude), float(gamma * magnitude))


def display_steps(steps: int, display_step: int, last: int) -> list[int]:
    """0, d, 2d, ... up to `last`, and `last` itself."""
    shown = list(range(0, last + 1, display_step))
    if shown[-1] != last:
        shown.append(last)
    return shown


def _first_non_finite(trace: Trace) -> int | None:
    arrays = [trace.loss, *trace.gradients.values(), *trace.parameters.values()]
    finite = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    bad = np.flatnonzero(~finite)
    return int(bad[0]) if bad.size else None


def _rule_latex(symbolic: Symbolic, name: str, formula: Formula) -> tuple[str, str]:
    at_t = {symbol: sp.Symbol(f"{p}_{{t}}") for p, symbol in symbolic.parameters.items()}
    lhs = rf"{name}_{{t+1}} = {name}_{{t}} - \eta \, "
    general = lhs + rf"\frac{{\partial L}}{{\partial {name}}}"
    expression = sp.Mul(
        formula.coefficient, sp.Sum(formula.summand.xreplace(at_t), *_limits(formula)),
        evaluate=False,
    )
    return general, lhs + r"\cdot " + latex(expression)


def _limits(formula: Formula) -> tuple[tuple[sp.Expr, ...], ...]:
    return formula.expression.args[1].limits  # type: ignore[no-any-return]


def _signed(value: float | Fraction) -> str:
    text = latex_number(value)
    return rf"\left({text}\right)" if value < 0 else text


def check_training(
    problem: Problem,
    symbolic: Symbolic,
    formulas: Mapping[str, Formula],
    trace: Trace,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainingFacts:
    """Every step of the trace against the exact references and the update rule.

    `on_step(done, total)` is called as the checks go (for a progress bar)."""
    names = list(symbolic.parameters)
    xs, ys = problem.exact(problem.x), problem.exact(problem.y)
    dtype, n = problem.dtype, problem.n
    quantities = {"L": Evaluator(symbolic, symbolic.loss, xs, ys)} | {
        f"dL/d{name}": Evaluator(symbolic, formulas[name], xs, ys) for name in names
    }
    eta = Fraction(problem.training.learning_rate)
    steps = trace.steps
    diverged_at = _first_non_finite(trace)
    last = steps if diverged_at is None else diverged_at - 1  # last step fully checked

    parameters = {name: trace.parameters[name] for name in names}
    gradients = {name: trace.gradients[name] for name in names}
    references = {name: [0.0] * (steps + 1) for name in names}
    worst_so_far = [0.0] * (steps + 1)
    ok_so_far = [True] * (steps + 1)
    first_failure: Failure | None = None
    worst: Failure | None = None
    failed = checks_made = bit_exact = 0
    max_ulps = max_rel = max_update_ulps = 0.0
    first_checks: dict[str, Check] = {}
    gradient_bound: Bound | None = None
    held = np.asarray(trace.learning_rate_held, dtype=dtype)
    all_ok = True

    def record(step: int, check: Check) -> None:
        nonlocal first_failure, worst, failed, checks_made, max_ulps, max_rel, all_ok
        checks_made += 1
        if not check.ok:
            failed += 1
            all_ok = False
            if first_failure is None:
                first_failure = Failure(step, check)
        if check.ulps > max_ulps or worst is None:
            max_ulps = max(max_ulps, check.ulps)
            worst = Failure(step, check)
        if check.rel_error is not None:
            max_rel = max(max_rel, check.rel_error)

    for s in range(last + 1):
        theta = [Fraction(float(parameters[name][s])) for name in names]
        if s >= 1:
            for name in names:
                previous = Fraction(float(parameters[name][s - 1]))
                change = eta * Fraction(float(gradients[name][s - 1]))
                check = compare(
                    f"{name} (update)",
                    previous - change,
                    float(parameters[name][s]),
                    update_bound(previous, change),
                    dtype,
                )
                record(s, check)
                max_update_ulps = max(max_update_ulps, check.ulps)
                if s == 1:
                    first_checks[name] = check
                expected = parameters[name][s - 1] - held * gradients[name][s - 1]
                bit_exact += int(expected == parameters[name][s])
        for quantity, evaluator in quantities.items():
            reference = evaluator.value(theta)
            bound = rounding_bound(n, dtype, evaluator.magnitude(theta))
            tape_value = trace.loss[s] if quantity == "L" else gradients[quantity[4:]][s]
            check = compare(quantity, reference, float(tape_value), bound, dtype)
            record(s, check)
            if quantity != "L":
                references[quantity[4:]][s] = float(reference)
                if s == 0 and gradient_bound is None:
                    gradient_bound = bound
        worst_so_far[s] = max_ulps
        ok_so_far[s] = all_ok
        if on_step is not None and (s % 25 == 0 or s == last):
            on_step(s, last)

    final_step = max(last, 0)
    rows = []
    for s in display_steps(steps, problem.training.display_step, final_step):
        rows.append(_row(s, names, trace, references, worst_so_far[s], ok_so_far[s]))
    if diverged_at is not None:
        rows.append(_row(diverged_at, names, trace, None, max_ulps, False))

    final = {name: float(parameters[name][final_step]) for name in names}
    final_theta = [Fraction(v) for v in final.values()] if last >= 0 else []
    optimum, note = _optimum(symbolic, xs, ys, names, final_theta, quantities["L"])
    rules = tuple(
        _update_rule(symbolic, name, formulas[name], trace, eta, first_checks.get(name))
        for name in names
    )
    series_end = final_step + 1
    return TrainingFacts(
        steps=problem.training.steps,
        learning_rate=problem.training.learning_rate,
        learning_rate_held=trace.learning_rate_held,
        display_step=problem.training.display_step,
        engine=trace.engine,
        rules=rules,
        sums_forms={
            q: e.form.latex if e.form else "" for q, e in quantities.items()
        },
        sums_forms_verified=all(
            e.form is not None and e.form.verified for e in quantities.values()
        ),
        gradient_bound=gradient_bound or rounding_bound(n, dtype, Fraction(0)),
        update_roundings=UPDATE_ROUNDINGS,
        update_unit_roundoff=float(OPTIMIZER_UNIT_ROUNDOFF),
        steps_checked=max(last, 0),
        checks_made=checks_made,
        failed_checks=failed,
        bit_exact_updates=bit_exact,
        updates_checked=max(last, 0) * len(names),
        ok=all_ok and diverged_at is None and last >= 0,
        first_failure=first_failure,
        diverged_at=diverged_at,
        worst=worst,
        max_ulps=max_ulps,
        max_rel_error=max_rel,
        max_update_ulps=max_update_ulps,
        final_step=final_step,
        final=final,
        final_loss=float(trace.loss[final_step]),
        optimum=optimum,
        optimum_note=note,
        rows=tuple(rows),
        series=Series(
            steps=tuple(range(series_end)),
            parameters={k: tuple(map(float, v[:series_end])) for k, v in parameters.items()},
            loss=tuple(map(float, trace.loss[:series_end])),
            gradients={k: tuple(map(float, v[:series_end])) for k, v in gradients.items()},
        ),
        loss_polynomial={
            e: float(c) for e, c in (quantities["L"].polynomial or {}).items()
        },
        prediction_polynomial=_prediction_polynomial(symbolic),
    )


def _prediction_polynomial(symbolic: Symbolic) -> dict[tuple[int, ...], float] | None:
    x = sp.Symbol("x_s")
    try:
        poly = sp.Poly(
            symbolic.prediction.subs(X_I, x), x, *symbolic.parameters.values()
        )
    except sp.PolynomialError:
        return None
    return {tuple(e): float(c) for e, c in poly.terms()}


def _row(
    s: int,
    names: Sequence[str],
    trace: Trace,
    references: Mapping[str, Sequence[float]] | None,
    worst: float,
    ok: bool,
) -> TrainingRow:
    return TrainingRow(
        step=s,
        parameters={name: float(trace.parameters[name][s]) for name in names},
        loss=float(trace.loss[s]),
        reference={
            name: references[name][s] if references is not None else math.nan for name in names
        },
        tape={name: float(trace.gradients[name][s]) for name in names},
        worst_ulps=worst,
        ok=ok,
        finite=references is not None,
    )


def _update_rule(
    symbolic: Symbolic,
    name: str,
    formula: Formula,
    trace: Trace,
    eta: Fraction,
    first_check: Check | None,
) -> UpdateRule:
    general, derived = _rule_latex(symbolic, name, formula)
    first = ""
    if first_check is not None:
        w0 = float(trace.parameters[name][0])
        g0 = float(trace.gradients[name][0])
        first = (
            rf"{name}_{{1}} = {name}_{{0}} - \eta \, g_{{{name},0}} = "
            rf"{_signed(w0)} - {latex_number(eta)} \cdot {_signed(g0)} = "
            rf"{latex_number(first_check.reference)}"
        )
    return UpdateRule(name, general, derived, first, first_check)


def _optimum(
    symbolic: Symbolic,
    xs: Sequence[Fraction],
    ys: Sequence[Fraction],
    names: Sequence[str],
    final: Sequence[Fraction],
    loss: Evaluator,
) -> tuple[Optimum | None, str]:
    gradients = [
        Evaluator(symbolic, symbolic.derivations[name].result, xs, ys) for name in names
    ]
    solution = affine_solution(gradients)
    if solution is None:
        return None, (
            "The least-squares solution is not unique here (a single sample, or all x "
            "equal): many lines fit equally well."
        )
    best = loss.value(solution)
    return (
        Optimum(
            parameters={name: float(v) for name, v in zip(names, solution, strict=True)},
            loss=float(best),
            distance={
                name: float(f - v) for name, f, v in zip(names, final, solution, strict=True)
            } if final else {},
            loss_gap=float(loss.value(final) - best) if final else math.nan,
        ),
        "",
    )


def _rounded(value: Fraction, dtype: type) -> np.floating:
    try:
        return dtype(float(value))  # type: ignore[no-any-return]
    except OverflowError:
        return dtype(math.copysign(math.inf, value))  # type: ignore[no-any-return]


def reference_trace(problem: Problem, symbolic: Symbolic, formulas: Mapping[str, Formula]) -> Trace:
    """A trace with no TensorFlow in it: exact gradients rounded to the dtype, and the
    optimizer's update computed in the dtype. Every check passes on it; tests break
    it on purpose, and the command line renders a first draft with it."""
    names = list(symbolic.parameters)
    dtype = np.dtype(problem.dtype).type
    xs, ys = problem.exact(problem.x), problem.exact(problem.y)
    loss = Evaluator(symbolic, symbolic.loss, xs, ys)
    evaluators = [Evaluator(symbolic, formulas[name], xs, ys) for name in names]
    held = dtype(np.float32(problem.training.learning_rate))
    steps = problem.training.steps
    values = [dtype(problem.initial.values[name]) for name in names]
    table = np.zeros((steps + 1, 1 + 2 * len(names)), dtype=dtype)
    with np.errstate(all="ignore"):
        for s in range(steps + 1):
            if not all(np.isfinite(values)):
                table[s:] = np.nan
                break
            theta = [Fraction(float(v)) for v in values]
            grads = [_rounded(e.value(theta), dtype) for e in evaluators]
            table[s] = [_rounded(loss.value(theta), dtype), *grads, *values]
            values = [v - held * g for v, g in zip(values, grads, strict=True)]
    k = len(names)
    return Trace(
        parameters={name: table[:, 1 + k + j] for j, name in enumerate(names)},
        loss=table[:, 0],
        gradients={name: table[:, 1 + j] for j, name in enumerate(names)},
        learning_rate_held=float(np.float32(problem.training.learning_rate)),
        engine="exact references rounded to " + problem.dtype + " (no TensorFlow)",
        tensorflow_version="none",
    )


__all__ = [
    "Failure",
    "Optimum",
    "Series",
    "TrainingFacts",
    "TrainingRow",
    "UpdateRule",
    "check_training",
    "display_steps",
    "reference_trace",
    "update_bound",
]
