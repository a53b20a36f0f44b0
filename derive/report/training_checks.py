"""Every training step checked: the tape's gradients against exact references at that
step's parameters, and each update against theta - eta * g within the optimizer's own
rounding bound; the tally of what each check found."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from functools import partial

import numpy as np

from ..exact.check import (
    FAIL,
    PRECISION_BITS,
    SEVERITY,
    SMALLEST_NORMAL,
    Bound,
    Check,
    compare,
    rounding_bound,
)
from ..exact.kinks import KinkWatch
from ..exact.reach import ForwardReach
from ..exact.roundings import tape_roundings
from ..exact.sums import Evaluator
from ..exact.underflow import SensitivityEvaluator, update_sensitivity
from ..exact.upper import at_step, magnitudes_above
from ..problem.problem import Problem
from ..tape.training import Trace
from .training_facts import Failure, TrainingRow

# The optimizer keeps the learning rate in a float32 variable, whatever the dtype of
# the parameters, and computes theta - fl(eta32 * g): three roundings (eta to float32,
# the product, the difference), each by at most 2^-24 relative.
UPDATE_ROUNDINGS = 3
OPTIMIZER_UNIT_ROUNDOFF = Fraction(1, 2**24)
UPDATE_GAMMA = (
    UPDATE_ROUNDINGS * OPTIMIZER_UNIT_ROUNDOFF / (1 - UPDATE_ROUNDINGS * OPTIMIZER_UNIT_ROUNDOFF)
)


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
    underflow = (1 + UPDATE_GAMMA) * Fraction(SMALLEST_NORMAL[dtype]) * sensitivity
    return Bound(
        UPDATE_ROUNDINGS,
        PRECISION_BITS["float32"],  # the optimizer holds the learning rate in float32
        float(OPTIMIZER_UNIT_ROUNDOFF),
        SMALLEST_NORMAL[dtype],
        float(UPDATE_GAMMA),
        float(magnitude),
        float(sensitivity),
        float(underflow),
        float(UPDATE_GAMMA * magnitude + underflow),
    )


class Tally:
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
        # An overflow is not ok (the value is lost) but is no failure: it is counted
        # apart, so that failed + overflowed + ... add up and the verdicts agree.
        if check.verdict == FAIL:
            self.failed += 1
            if self.first_failure is None:
                self.first_failure = Failure(step, check)
        self.overflowed += check.overflowed
        if not math.isfinite(check.tape):
            return  # no distance to speak of: the largest-error statistics skip it
        if check.kink is not None:  # the tape may rightly differ by a whole term: no
            self.inconclusive += 1  # distance to speak of either
            self.first_inconclusive = self.first_inconclusive or Failure(step, check)
            return
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
        if check.rel_error is not None:
            self.max_rel = max(self.max_rel, check.rel_error)
        if update:
            self.max_update_ulps = max(self.max_update_ulps, check.ulps)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.overflowed == 0


class StepChecks:
    """The checks of one trace, step by step, up to its last finite step."""

    def __init__(
        self,
        problem: Problem,
        quantities: Mapping[str, Evaluator],
        flushes: Mapping[str, SensitivityEvaluator],
        trace: Trace,
        kinks: KinkWatch | None = None,
        reach: ForwardReach | None = None,
    ) -> None:
        self.problem, self.quantities, self.trace = problem, quantities, trace
        self.flushes = flushes
        self.kinks, self.reach = kinks, reach
        self.names = list(trace.parameters)
        self.last = trace.last_finite()
        self.eta = Fraction(problem.training.learning_rate)
        self.held = np.asarray(trace.learning_rate_held, dtype=problem.dtype)
        self.tally = Tally()
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
        # M and S at every step at once, as float64 upper bounds (exact/upper.py): the
        # bound only needs to hold, and exactly they cost more than the rest of a check
        points = np.column_stack(
            [np.asarray(trace.parameters[name][: self.last + 1], np.float64) for name in self.names]
        )
        self.magnitudes = {q: magnitudes_above(e, points) for q, e in quantities.items()}
        self.sensitivities = {q: flushes[q].above(points) for q in quantities}
        # k of each quantity: the depth of the tape's sums (as the trace reports its
        # order) plus the roundings of one term; the same at every step.
        counts = tape_roundings(
            problem.n, problem.dtype, trace.order, problem.model_entry, problem.loss_entry
        )
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
        self._diverged()

    def _diverged(self) -> None:
        """The first non-finite step is checked too, so that its verdict is one of the
        four: its updates from the last finite step, and, where the parameters are still
        finite, its loss and gradients against the exact values there. A non-finite tape
        value is an overflow where the exact value leaves the range too, else a failure."""
        d = self.last + 1
        if d < 1 or d > self.trace.steps:
            return
        exact_before = self.bit_exact
        self._updates(d)
        self.bit_exact = exact_before  # "bit for bit" counts the finite steps' updates
        theta = [float(self.trace.parameters[name][d]) for name in self.names]
        if all(math.isfinite(v) for v in theta):
            for name, v in zip(self.names, theta, strict=True):
                self.values[name].append(Fraction(v))
            self._values(d)

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
        kink = self.kinks.near(theta) if self.kinks is not None else None
        for quantity, evaluator in self.quantities.items():
            flush = self.flushes[quantity]
            bound = rounding_bound(
                self.problem.dtype,
                at_step(self.magnitudes[quantity], s, partial(evaluator.magnitude, theta)),
                at_step(self.sensitivities[quantity], s, partial(flush.at, theta)),
                roundings=self.roundings[quantity],
            )
            reference = evaluator.value(theta)
            parameter = quantity.removeprefix("dL/d")
            tape = self.trace.loss[s] if quantity == "L" else self.trace.gradients[parameter][s]
            summed = self.problem.n if quantity == "L" else 1  # the mean: a sum, then / n
            check = compare(
                quantity,
                reference,
                float(tape),
                bound,
                self.problem.dtype,
                summed,
                kink=None if quantity == "L" else kink,
                forward=None if self.reach is None else partial(self.reach.at, theta),
            )
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
            training_row(
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
            checked = diverged_at >= 1  # see _diverged
            rows.append(
                training_row(
                    diverged_at,
                    names,
                    trace,
                    self.references,
                    self.tally.max_ulps,
                    False,
                    self.tally.max_used,
                    SEVERITY[int(self.severity[diverged_at])] if checked else FAIL,
                    finite=False,
                )
            )
        return rows


def training_row(
    s: int,
    names: Sequence[str],
    trace: Trace,
    references: Mapping[str, np.ndarray] | None,
    worst: float,
    ok: bool,
    used: float = math.nan,
    verdict: str = FAIL,
    finite: bool | None = None,
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
        finite=references is not None if finite is None else finite,
        worst_used=used,
        verdict=verdict,
    )
