"""The training run, checked step by step, as facts for the report.

At every step s = 0, 1, ..., N the tape's loss and gradients are compared with exact
references at the parameter values the tape held (as in the initial check), and for
s >= 1 the parameters after ``apply_gradients`` are compared with the update rule
applied to the previous values,

    theta_s = theta_{s-1} - eta * g_{s-1},

with a tolerance from the rounding error of that update (:func:`update_bound`).
Checking stops at the first step with a non-finite value (a diverging run).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

import numpy as np
import sympy as sp

from ..common.numbers import as_float, latex_number, signed_latex
from ..exact.check import Check, rounding_bound
from ..exact.kinks import KinkWatch
from ..exact.reach import ForwardReach
from ..exact.stability import rate_bound
from ..exact.sums import Evaluator, data_sums
from ..exact.underflow import SensitivityEvaluator, sensitivities
from ..problem.problem import Problem
from ..symbolic.derivation import Formula, Symbolic, latex
from ..symbolic.printing import subscripted
from ..tape.training import Trace
from .condensed import worked_in_full
from .landscape import NO_CLOSED_FORM, NOT_UNIQUE, Landscape, landscape
from .sections import residual_shorthand
from .training_checks import OPTIMIZER_UNIT_ROUNDOFF, UPDATE_ROUNDINGS, StepChecks
from .training_facts import Optimum, OriginalLines, Series, TrainingFacts, UpdateRule

# --- What needs no tape: the loss over the parameters, its minimum ---------------------


# --- The step checks ---------------------------------------------------------------------


def check_training(
    problem: Problem,
    symbolic: Symbolic,
    formulas: Mapping[str, Formula],
    trace: Trace,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainingFacts:
    """Every step of the trace against the exact references and the update rule.

    `on_step(done, total)` is called as the checks go (for a progress bar).
    """
    names = list(symbolic.parameters)
    data = data_sums(problem.columns, problem.y)
    ground = landscape(problem, symbolic)
    quantities = {"L": ground.loss} | {
        f"dL/d{name}": Evaluator(symbolic, formulas[name], data) for name in names
    }
    flushes = {
        quantity: SensitivityEvaluator(
            sensitivities(symbolic).of_quantity(quantity.removeprefix("dL/d")),
            symbolic,
            problem.columns,
            problem.y,
            problem.dtype,
        )
        for quantity in quantities
    }
    kinks = KinkWatch(symbolic, problem.columns, problem.y, problem.dtype)
    reach = ForwardReach(symbolic, problem.columns, problem.y, problem.dtype)
    checks = StepChecks(problem, quantities, flushes, trace, kinks, reach)
    checks.run(on_step)
    tally, last = checks.tally, checks.last
    diverged_at = trace.first_non_finite()
    final_step = max(last, 0)
    final = {name: float(trace.parameters[name][final_step]) for name in names}
    final_original = _original(problem, final) if last >= 0 else None
    optimum_original = (
        None
        if ground.solution is None
        else _original(problem, dict(zip(names, map(float, ground.solution), strict=True)))
    )
    end = final_step + 1
    return TrainingFacts(
        steps=problem.training.steps,
        learning_rate=problem.training.learning_rate,
        learning_rate_held=trace.learning_rate_held,
        learning_rate_change=float(
            abs(Fraction(trace.learning_rate_held) - checks.eta) / checks.eta
        ),
        display_step=problem.training.display_step,
        engine=trace.engine,
        rules=tuple(
            _update_rule(
                name, formulas[name], symbolic, trace, checks.eta, checks.first_updates.get(name)
            )
            for name in names
        ),
        # Written out for one feature only: over k features the sums form has a term for
        # every pair of columns, too many to read (and to fit the page)
        sums_forms={
            q: e.form.latex if e.form and problem.k == 1 else "" for q, e in quantities.items()
        },
        sums_forms_verified=all(
            e.form is not None and e.form.verified for e in quantities.values()
        ),
        gradient_bound=checks.gradient_bound
        or rounding_bound(
            problem.dtype,
            Fraction(0),
            Fraction(0),
            roundings=checks.roundings[f"dL/d{names[0]}"],
        ),
        update_roundings=UPDATE_ROUNDINGS,
        update_unit_roundoff=float(OPTIMIZER_UNIT_ROUNDOFF),
        steps_checked=final_step,
        checks_made=tally.made,
        failed_checks=tally.failed,
        updates_checked=final_step * len(names),
        bit_exact_updates=checks.bit_exact,
        ok=tally.ok and diverged_at is None and last >= 0,
        first_failure=tally.first_failure,
        diverged_at=diverged_at,
        worst=tally.worst,
        max_ulps=tally.max_ulps,
        max_rel_error=tally.max_rel,
        max_update_ulps=tally.max_update_ulps,
        max_used=tally.max_used,
        most_used=tally.most_used,
        inconclusive_checks=tally.inconclusive,
        overflowed_checks=tally.overflowed,
        first_inconclusive=tally.first_inconclusive,
        final_step=final_step,
        final=final,
        final_loss=float(trace.loss[final_step]),
        optimum=(
            _optimum(ground, names, [Fraction(v) for v in final.values()]) if last >= 0 else None
        ),
        optimum_note=(
            "" if ground.solution is not None else NOT_UNIQUE if ground.affine else NO_CLOSED_FORM
        ),
        rows=tuple(checks.rows()),
        series=Series(
            steps=tuple(range(end)),
            parameters={k: tuple(map(float, trace.parameters[k][:end])) for k in names},
            loss=tuple(map(float, trace.loss[:end])),
            gradients={k: tuple(map(float, trace.gradients[k][:end])) for k in names},
        ),
        plot_spec=ground.plot_spec(problem, names),
        stability=rate_bound(problem, symbolic),
        curvature=problem.loss_entry.curvature,
        standardized=problem.standardized,
        original_units=problem.model_entry.original_units,
        final_original=final_original,
        optimum_original=optimum_original,
        original_lines=_original_lines(problem, final_original, optimum_original),
    )


def _original_lines(
    problem: Problem,
    final: Mapping[str, float] | None,
    optimum: Mapping[str, float] | None,
) -> OriginalLines | None:
    """The values in the original units as LaTeX, in the words of the model's entry."""
    units = problem.model_entry.original_units
    if units is None or (final is None and optimum is None):
        return None
    return OriginalLines(
        fitted=(
            ""
            if final is None
            else units.prediction({name: latex_number(v, 6) for name, v in final.items()})
        ),
        final=(
            ""
            if final is None
            else r", \qquad ".join(
                f"{symbol} = {latex_number(final[name])}" for name, symbol in units.symbols
            )
        ),
        optimum=(
            ""
            if optimum is None
            else r", \; ".join(f"{name} = {latex_number(v)}" for name, v in optimum.items())
        ),
    )


def _original(problem: Problem, values: Mapping[str, float]) -> dict[str, float] | None:
    """The parameters in the data's own units, when the model trained on z-scores."""
    units = problem.model_entry.original_units
    if problem.standardized is None or units is None:
        return None
    return problem.standardized.original(values, units)


def _update_rule(
    name: str,
    formula: Formula,
    symbolic: Symbolic,
    trace: Trace,
    eta: Fraction,
    first_check: Check | None,
) -> UpdateRule:
    """The rule in general, with the derived gradient put in, and at the first step."""
    at_t = {symbol: sp.Symbol(subscripted(p, "t")) for p, symbol in symbolic.parameters.items()}
    lhs = rf"{subscripted(name, 't+1')} = {subscripted(name, 't')} - \eta \, "
    limits = formula.expression.args[1].limits
    summand = formula.summand
    if residual_shorthand(symbolic):  # many features: r_i at step t, as section 2 writes it
        summand = summand.xreplace({symbolic.residual: sp.Symbol(r"r_{i}^{(t)}")})
    gradient_at_t = sp.Mul(
        formula.coefficient, sp.Sum(summand.xreplace(at_t), *limits), evaluate=False
    )
    first = ""
    if first_check is not None:
        first = (
            rf"{subscripted(name, '1')} = {subscripted(name, '0')} - \eta \, g_{{{name},0}} = "
            rf"{signed_latex(float(trace.parameters[name][0]))} - {latex_number(eta)} \cdot "
            rf"{signed_latex(float(trace.gradients[name][0]))} = "
            + latex_number(first_check.reference)
        )
    return UpdateRule(
        parameter=name,
        general=lhs + rf"\frac{{\partial L}}{{\partial {name}}}",
        derived=lhs + r"\cdot " + latex(gradient_at_t),
        first_step=first,
        first_check=first_check,
        in_full=name in worked_in_full(tuple(symbolic.parameters)),
    )


def _optimum(ground: Landscape, names: Sequence[str], final: Sequence[Fraction]) -> Optimum | None:
    if ground.solution is None:
        return None
    best = ground.loss.value(ground.solution)
    return Optimum(
        parameters={n: float(v) for n, v in zip(names, ground.solution, strict=True)},
        loss=float(best),
        distance={n: float(f - v) for n, f, v in zip(names, final, ground.solution, strict=True)},
        loss_gap=float(ground.loss.value(final) - best),
    )


# --- A trace without TensorFlow ------------------------------------------------------------


def _rounded(value: Fraction, dtype: type) -> np.floating:
    with np.errstate(over="ignore"):  # beyond the dtype: its infinity, as the tape's
        return dtype(as_float(value))  # type: ignore[no-any-return]


def reference_trace(problem: Problem, symbolic: Symbolic, formulas: Mapping[str, Formula]) -> Trace:
    """A trace with no TensorFlow in it: exact gradients rounded to the dtype, and the
    optimizer's update computed in the dtype. Every check passes on it; tests break it
    on purpose, and the command line renders a first draft with it while it waits."""
    names = list(symbolic.parameters)
    dtype = np.dtype(problem.dtype).type
    data = data_sums(problem.columns, problem.y)
    loss = Evaluator(symbolic, symbolic.loss, data)
    evaluators = [Evaluator(symbolic, formulas[name], data) for name in names]
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
