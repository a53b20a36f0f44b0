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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

from .check import (
    FAIL,
    INCONCLUSIVE,
    OVERFLOW,
    PASS,
    PRECISION_BITS,
    SEVERITY,
    SMALLEST_NORMAL,
    Bound,
    Check,
    compare,
    rounding_bound,
    worst_verdict,
)
from .numbers import latex_number
from .plots import PlotSpec
from .problem import Problem
from .roundings import tape_roundings
from .stability import Stability, stability
from .standardize import Standardization
from .sums import Evaluator, affine_solution, data_sums
from .symbolic import X_I, Formula, Symbolic, latex
from .tape import Trace
from .underflow import SensitivityEvaluator, sensitivities, update_sensitivity

# The optimizer keeps the learning rate in a float32 variable, whatever the dtype of
# the parameters, and computes theta - fl(eta32 * g): three roundings (eta to float32,
# the product, the difference), each by at most 2^-24 relative.
UPDATE_ROUNDINGS = 3
OPTIMIZER_UNIT_ROUNDOFF = Fraction(1, 2**24)
_UPDATE_GAMMA = (
    UPDATE_ROUNDINGS * OPTIMIZER_UNIT_ROUNDOFF / (1 - UPDATE_ROUNDINGS * OPTIMIZER_UNIT_ROUNDOFF)
)
NOT_UNIQUE = (
    "The least-squares solution is not unique here (a single sample, or all x equal): "
    "many lines fit equally well."
)


@dataclass(frozen=True)
class UpdateRule:
    """theta_{t+1} = theta_t - eta * dL/dtheta, for one parameter, and its first step."""

    parameter: str
    general: str  # LaTeX: W_{t+1} = W_{t} - \eta \frac{\partial L}{\partial W}
    derived: str  # LaTeX: the same with the derived gradient put in
    first_step: str  # LaTeX: W_{1} = <W_0> - <eta> (<g_0>) = <exact>; "" without steps
    first_check: Check | None  # the tape's W_1 against that value


@dataclass(frozen=True)
class TrainingRow:
    """One displayed step: the values the tape held and computed there."""

    step: int
    parameters: Mapping[str, float]
    loss: float  # the tape's
    reference: Mapping[str, float]  # exact dL/dtheta at this step (NaN where not checked)
    tape: Mapping[str, float]  # the tape's dL/dtheta
    worst_ulps: float  # the largest ULP distance of any check up to this step
    ok: bool  # every check up to this step passed
    finite: bool = True
    worst_used: float = math.nan  # the largest share of its bound any check up to here used
    # the worst verdict of the checks since the previous displayed row (pass <
    # inconclusive < overflow < fail): the row's badge
    verdict: str = PASS


@dataclass(frozen=True)
class Failure:
    """A check, and the step it was made at."""

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
    learning_rate_change: float  # |held - given| / given
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
    updates_checked: int
    bit_exact_updates: int  # updates equal bit for bit to fl(theta - fl(eta32 * g))
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
    plot_spec: PlotSpec  # what the plots need besides the series
    stability: Stability | None = None  # the learning-rate bound from the Hessian
    standardized: Standardization | None = None  # the tape trained on z-scores
    final_original: Mapping[str, float] | None = None  # `final` in the data's own units
    optimum_original: Mapping[str, float] | None = None  # the optimum in the data's units
    max_used: float = 0.0  # the largest |tape - reference| / tolerance of any check
    most_used: Failure | None = None  # that check, and its step
    inconclusive_checks: int = 0  # within a bound that is at least half the value
    overflowed_checks: int = 0  # non-finite where a correct tape may leave the range
    first_inconclusive: Failure | None = None

    @property
    def verdict(self) -> str:
        """The worst verdict of the whole training (a divergence fails)."""
        if not self.ok:
            return FAIL
        return worst_verdict(
            [OVERFLOW] * bool(self.overflowed_checks)
            + [INCONCLUSIVE] * bool(self.inconclusive_checks)
        )

    @property
    def first_failing_step(self) -> int | None:
        if self.first_failure is not None:
            return self.first_failure.step
        return self.diverged_at


def update_bound(
    previous: Fraction, change: Fraction, dtype: str, learning_rate: Fraction
) -> Bound:
    """|fl(theta - fl(eta32 g)) - (theta - eta g)| <= gamma_3 (|theta| + |eta g|) + flushes.

    With theta' = theta (1 + d2) - eta g (1 + d0)(1 + d1)(1 + d2) and every |d| <= u,
    the error is at most u |theta| + gamma_3 |eta g|. Numbers flushed to zero add
    (1 + gamma_3) lambda S, lambda the dtype's smallest normal number.
    """
    magnitude = abs(previous) + abs(change)
    sensitivity = update_sensitivity(learning_rate)
    underflow = (1 + _UPDATE_GAMMA) * Fraction(SMALLEST_NORMAL[dtype]) * sensitivity
    return Bound(
        UPDATE_ROUNDINGS,
        PRECISION_BITS["float32"],  # the optimizer holds the learning rate in float32
        float(OPTIMIZER_UNIT_ROUNDOFF),
        SMALLEST_NORMAL[dtype],
        float(_UPDATE_GAMMA),
        float(magnitude),
        float(sensitivity),
        float(underflow),
        float(_UPDATE_GAMMA * magnitude + underflow),
    )


# --- What needs no tape: the loss over the parameters, its minimum ---------------------


@dataclass(frozen=True)
class Landscape:
    """The loss for this data as a function of the parameters, and where it is smallest."""

    loss: Evaluator
    solution: tuple[Fraction, ...] | None  # the exact least-squares optimum
    prediction_polynomial: Mapping[tuple[int, ...], float] | None  # y_hat(x, parameters)

    def plot_spec(self, problem: Problem, names: Sequence[str]) -> PlotSpec:
        # A plot shows at most MAX_PLOTTED_POINTS samples, evenly spread over the data.
        chosen = np.unique(np.linspace(0, problem.n - 1, MAX_PLOTTED_POINTS).astype(int))
        return PlotSpec(
            names=tuple(names),
            x=tuple(problem.x[i] for i in chosen),
            y=tuple(problem.y[i] for i in chosen),
            samples=problem.n,
            loss_polynomial={e: float(c) for e, c in (self.loss.polynomial or {}).items()},
            prediction_polynomial=self.prediction_polynomial,
            optimum=(
                None
                if self.solution is None
                else {n: float(v) for n, v in zip(names, self.solution, strict=True)}
            ),
            optimum_loss=(None if self.solution is None else float(self.loss.value(self.solution))),
            display_step=problem.training.display_step,
            standardized=problem.standardized is not None,
        )


def landscape(problem: Problem, symbolic: Symbolic) -> Landscape:
    data = data_sums(problem.x, problem.y)
    gradients = [Evaluator(symbolic, d.result, data) for d in symbolic.derivations.values()]
    return Landscape(
        loss=Evaluator(symbolic, symbolic.loss, data),
        solution=affine_solution(gradients),
        prediction_polynomial=_prediction_polynomial(symbolic),
    )


def plot_spec(problem: Problem, symbolic: Symbolic) -> PlotSpec:
    """What the plots need besides the trace; known before training."""
    return landscape(problem, symbolic).plot_spec(problem, list(symbolic.parameters))


def _prediction_polynomial(symbolic: Symbolic) -> dict[tuple[int, ...], float] | None:
    x = sp.Symbol("x_s")
    try:
        poly = sp.Poly(symbolic.prediction.subs(X_I, x), x, *symbolic.parameters.values())
    except sp.PolynomialError:
        return None
    return {tuple(e): float(c) for e, c in poly.terms()}


MAX_PLOTTED_POINTS = 500  # enough to show the cloud; each point is an element in the PDF


# --- The step checks ---------------------------------------------------------------------


class _Tally:
    """Running totals over every check made."""

    def __init__(self) -> None:
        self.made = self.failed = 0
        self.first_failure: Failure | None = None
        self.worst: Failure | None = None
        self.max_ulps = self.max_rel = self.max_update_ulps = 0.0
        self.most_used: Failure | None = None
        self.max_used = 0.0
        self.inconclusive = self.overflowed = 0
        self.first_inconclusive: Failure | None = None

    def add(self, step: int, check: Check, update: bool = False) -> None:
        self.made += 1
        if not check.ok:
            self.failed += 1
            if self.first_failure is None:
                self.first_failure = Failure(step, check)
        if self.worst is None or check.ulps > self.max_ulps:
            self.max_ulps = max(self.max_ulps, check.ulps)
            self.worst = Failure(step, check)
        if self.most_used is None or check.used > self.max_used:
            self.max_used = max(self.max_used, check.used)
            self.most_used = Failure(step, check)
        if check.inconclusive:
            self.inconclusive += 1
            if self.first_inconclusive is None:
                self.first_inconclusive = Failure(step, check)
        self.overflowed += check.overflowed
        if check.rel_error is not None:
            self.max_rel = max(self.max_rel, check.rel_error)
        if update:
            self.max_update_ulps = max(self.max_update_ulps, check.ulps)

    @property
    def ok(self) -> bool:
        return self.failed == 0


class _StepChecks:
    """The checks of one trace, step by step, up to its last finite step."""

    def __init__(
        self,
        problem: Problem,
        quantities: Mapping[str, Evaluator],
        flushes: Mapping[str, SensitivityEvaluator],
        trace: Trace,
    ) -> None:
        self.problem, self.quantities, self.trace = problem, quantities, trace
        self.flushes = flushes
        self.names = list(trace.parameters)
        self.last = trace.last_finite()
        self.eta = Fraction(problem.training.learning_rate)
        self.held = np.asarray(trace.learning_rate_held, dtype=problem.dtype)
        self.tally = _Tally()
        self.references = {name: np.full(trace.steps + 1, math.nan) for name in self.names}
        self.worst_so_far = np.zeros(trace.steps + 1)
        self.used_so_far = np.zeros(trace.steps + 1)
        self.ok_so_far = np.ones(trace.steps + 1, dtype=bool)
        self.severity = np.zeros(trace.steps + 1, dtype=np.int8)  # worst verdict at a step
        self.first_updates: dict[str, Check] = {}
        self.gradient_bound: Bound | None = None
        self.bit_exact = 0
        self.values = {
            name: [Fraction(float(v)) for v in trace.parameters[name][: self.last + 1]]
            for name in self.names
        }
        # k of each quantity: the depth of the tape's sums (as the trace reports its
        # order) plus the roundings of one term; the same at every step.
        counts = tape_roundings(problem.n, problem.dtype, trace.order, problem.model, problem.loss)
        self.roundings = {
            quantity: counts[quantity.removeprefix("dL/d")] for quantity in quantities
        }

    def run(self, on_step: Callable[[int, int], None] | None) -> None:
        for s in range(self.last + 1):
            if s >= 1:
                self._updates(s)
            self._values(s)
            self.worst_so_far[s], self.ok_so_far[s] = self.tally.max_ulps, self.tally.ok
            self.used_so_far[s] = self.tally.max_used
            if on_step is not None and (s % 50 == 0 or s == self.last):
                on_step(s, self.last)

    def _updates(self, s: int) -> None:
        """theta_s against theta_{s-1} - eta g_{s-1}, exactly, for each parameter."""
        parameters, gradients = self.trace.parameters, self.trace.gradients
        for name in self.names:
            previous = self.values[name][s - 1]
            change = self.eta * Fraction(float(gradients[name][s - 1]))
            check = compare(
                f"{name} (update)",
                previous - change,
                float(parameters[name][s]),
                update_bound(previous, change, self.problem.dtype, self.eta),
                self.problem.dtype,
            )
            self.tally.add(s, check, update=True)
            self._note(s, check)
            self.first_updates.setdefault(name, check)
            # The optimizer's own arithmetic, fl(theta - fl(eta32 g)), in the dtype:
            redone = parameters[name][s - 1] - self.held * gradients[name][s - 1]
            self.bit_exact += int(redone == parameters[name][s])

    def _values(self, s: int) -> None:
        """The tape's loss and gradients at theta_s against the exact references."""
        theta = [self.values[name][s] for name in self.names]
        for quantity, evaluator in self.quantities.items():
            bound = rounding_bound(
                self.problem.n,
                self.problem.dtype,
                evaluator.magnitude(theta),
                self.flushes[quantity].at(theta),
                roundings=self.roundings[quantity],
            )
            reference = evaluator.value(theta)
            parameter = quantity.removeprefix("dL/d")
            tape = self.trace.loss[s] if quantity == "L" else self.trace.gradients[parameter][s]
            summed = self.problem.n if quantity == "L" else 1  # the mean: a sum, then / n
            check = compare(quantity, reference, float(tape), bound, self.problem.dtype, summed)
            self.tally.add(s, check)
            self._note(s, check)
            if quantity != "L":
                self.references[parameter][s] = float(reference)
                self.gradient_bound = self.gradient_bound or bound

    def _note(self, s: int, check: Check) -> None:
        self.severity[s] = max(self.severity[s], SEVERITY.index(check.verdict))

    def rows(self) -> list[TrainingRow]:
        """The displayed steps, and the first non-finite one if training diverged.

        Each row's verdict is the worst of the checks made since the previous row."""
        trace, names = self.trace, self.names
        shown = [
            s for s in trace.display_steps(self.problem.training.display_step) if s <= self.last
        ]
        rows = [
            _row(
                s,
                names,
                trace,
                self.references,
                float(self.worst_so_far[s]),
                bool(self.ok_so_far[s]),
                float(self.used_so_far[s]),
                SEVERITY[int(self.severity[start : s + 1].max())],
            )
            for start, s in zip([0] + [s + 1 for s in shown], shown, strict=False)
        ]
        diverged_at = trace.first_non_finite()
        if diverged_at is not None:
            rows.append(
                _row(
                    diverged_at, names, trace, None, self.tally.max_ulps, False, self.tally.max_used
                )
            )
        return rows


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
    data = data_sums(problem.x, problem.y)
    ground = landscape(problem, symbolic)
    quantities = {"L": ground.loss} | {
        f"dL/d{name}": Evaluator(symbolic, formulas[name], data) for name in names
    }
    flushes = {
        quantity: SensitivityEvaluator(
            sensitivities(symbolic).of_quantity(quantity.removeprefix("dL/d")),
            symbolic,
            problem.x,
            problem.y,
            problem.dtype,
        )
        for quantity in quantities
    }
    checks = _StepChecks(problem, quantities, flushes, trace)
    checks.run(on_step)
    tally, last = checks.tally, checks.last
    diverged_at = trace.first_non_finite()
    final_step = max(last, 0)
    final = {name: float(trace.parameters[name][final_step]) for name in names}
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
        sums_forms={q: e.form.latex if e.form else "" for q, e in quantities.items()},
        sums_forms_verified=all(
            e.form is not None and e.form.verified for e in quantities.values()
        ),
        gradient_bound=checks.gradient_bound
        or rounding_bound(
            problem.n,
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
        optimum_note="" if ground.solution is not None else NOT_UNIQUE,
        rows=tuple(checks.rows()),
        series=Series(
            steps=tuple(range(end)),
            parameters={k: tuple(map(float, trace.parameters[k][:end])) for k in names},
            loss=tuple(map(float, trace.loss[:end])),
            gradients={k: tuple(map(float, trace.gradients[k][:end])) for k in names},
        ),
        plot_spec=ground.plot_spec(problem, names),
        stability=stability(problem, symbolic),
        standardized=problem.standardized,
        final_original=_original(problem, final) if last >= 0 else None,
        optimum_original=(
            None
            if ground.solution is None
            else _original(problem, dict(zip(names, map(float, ground.solution), strict=True)))
        ),
    )


def _original(problem: Problem, values: Mapping[str, float]) -> dict[str, float] | None:
    """The linear model's W and b in the data's own units, when it trained on z-scores."""
    if problem.standardized is None:
        return None
    return problem.standardized.original(values)


def _row(
    s: int,
    names: Sequence[str],
    trace: Trace,
    references: Mapping[str, np.ndarray] | None,
    worst: float,
    ok: bool,
    used: float = math.nan,
    verdict: str = FAIL,
) -> TrainingRow:
    return TrainingRow(
        step=s,
        parameters={name: float(trace.parameters[name][s]) for name in names},
        loss=float(trace.loss[s]),
        reference={
            name: float(references[name][s]) if references is not None else math.nan
            for name in names
        },
        tape={name: float(trace.gradients[name][s]) for name in names},
        worst_ulps=worst,
        ok=ok,
        finite=references is not None,
        worst_used=used,
        verdict=verdict,
    )


def _signed(value: float | Fraction) -> str:
    text = latex_number(value)
    return rf"\left({text}\right)" if value < 0 else text


def _update_rule(
    name: str,
    formula: Formula,
    symbolic: Symbolic,
    trace: Trace,
    eta: Fraction,
    first_check: Check | None,
) -> UpdateRule:
    """The rule in general, with the derived gradient put in, and at the first step."""
    at_t = {symbol: sp.Symbol(f"{p}_{{t}}") for p, symbol in symbolic.parameters.items()}
    lhs = rf"{name}_{{t+1}} = {name}_{{t}} - \eta \, "
    limits = formula.expression.args[1].limits
    gradient_at_t = sp.Mul(
        formula.coefficient, sp.Sum(formula.summand.xreplace(at_t), *limits), evaluate=False
    )
    first = ""
    if first_check is not None:
        first = (
            rf"{name}_{{1}} = {name}_{{0}} - \eta \, g_{{{name},0}} = "
            rf"{_signed(float(trace.parameters[name][0]))} - {latex_number(eta)} \cdot "
            rf"{_signed(float(trace.gradients[name][0]))} = {latex_number(first_check.reference)}"
        )
    return UpdateRule(
        parameter=name,
        general=lhs + rf"\frac{{\partial L}}{{\partial {name}}}",
        derived=lhs + r"\cdot " + latex(gradient_at_t),
        first_step=first,
        first_check=first_check,
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
    try:
        return dtype(float(value))  # type: ignore[no-any-return]
    except OverflowError:
        return dtype(math.copysign(math.inf, value))  # type: ignore[no-any-return]


def reference_trace(problem: Problem, symbolic: Symbolic, formulas: Mapping[str, Formula]) -> Trace:
    """A trace with no TensorFlow in it: exact gradients rounded to the dtype, and the
    optimizer's update computed in the dtype. Every check passes on it; tests break it
    on purpose, and the command line renders a first draft with it while it waits."""
    names = list(symbolic.parameters)
    dtype = np.dtype(problem.dtype).type
    data = data_sums(problem.x, problem.y)
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
