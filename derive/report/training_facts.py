"""The facts of the training section: the update rule, the table's rows, the series the
plots draw, the first failure, the optimum, the stability of the learning rate."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..exact.check import FAIL, INCONCLUSIVE, OVERFLOW, PASS, Bound, Check, worst_verdict
from ..exact.stability import Stability
from ..models.registry import OriginalUnits
from ..problem.standardize import Standardization
from .plotspec import PlotSpec


@dataclass(frozen=True)
class UpdateRule:
    """theta_{t+1} = theta_t - eta * dL/dtheta, for one parameter, and its first step."""

    parameter: str
    general: str  # LaTeX: W_{t+1} = W_{t} - \eta \frac{\partial L}{\partial W}
    derived: str  # LaTeX: the same with the derived gradient put in
    first_step: str  # LaTeX: W_{1} = <W_0> - <eta> (<g_0>) = <exact>; "" without steps
    first_check: Check | None  # the tape's W_1 against that value
    in_full: bool = True  # shown step by step (see derive.report.condensed)


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
class OriginalLines:
    """The values in the data's own units as LaTeX, written by the model's entry
    (its OriginalUnits: the prediction and each parameter's symbol)."""

    fitted: str  # the prediction at the last finite step's parameters, 6 digits ("": none)
    final: str  # each parameter's symbol in the original units = its value there
    optimum: str  # each parameter = its value at the optimum ("" without one)


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
    # what bounds the learning rate instead, when the loss has no Hessian to give it
    # (the loss entry's curvature: "hessian", "none" or "inside")
    curvature: str = "hessian"
    standardized: Standardization | None = None  # the tape trained on z-scores
    original_units: OriginalUnits | None = None  # the model's map back from z-scores
    final_original: Mapping[str, float] | None = None  # `final` in the data's own units
    optimum_original: Mapping[str, float] | None = None  # the optimum in the data's units
    original_lines: OriginalLines | None = None  # both, as LaTeX, when final_original is set
    max_used: float = 0.0  # the largest |tape - reference| / tolerance of any check
    most_used: Failure | None = None  # that check, and its step
    inconclusive_checks: int = 0  # within a bound that is at least half the value
    overflowed_checks: int = 0  # non-finite where a correct tape may leave the range
    first_inconclusive: Failure | None = None

    @property
    def verdict(self) -> str:
        """The worst verdict of the whole training: a divergence is an overflow when
        every value lost at its step was beyond the dtype's range exactly too (and nothing
        failed), else a failure."""
        if not self.ok:
            return OVERFLOW if self.failed_checks == 0 and self.overflowed_checks else FAIL
        return worst_verdict(
            [OVERFLOW] * bool(self.overflowed_checks)
            + [INCONCLUSIVE] * bool(self.inconclusive_checks)
        )

    @property
    def first_failing_step(self) -> int | None:
        if self.first_failure is not None:
            return self.first_failure.step
        return self.diverged_at
