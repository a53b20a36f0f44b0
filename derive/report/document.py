"""The Report: the facts of every section, what they add up to (ok, the verdict), and
the report as a plain dict, the JSON document (schema: derive/schema/report.schema.json)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..common.i18n import Message
from ..exact.check import FAIL, INCONCLUSIVE, OVERFLOW, PASS, Check
from ..exact.roundings import RoundingFacts
from . import display
from .backward_facts import BackwardFacts
from .facts import (
    GradientDerivation,
    ProblemFacts,
    SampleTable,
)
from .substitution import Substitution
from .todict import (
    SAMPLE_ARRAYS,
    SCHEMA_ID,
    _number,
    _row,
    backward_to_list,
    check_to_dict,
    training_to_dict,
)
from .training_facts import TrainingFacts


@dataclass(frozen=True)
class Report:
    problem: ProblemFacts
    derivations: tuple[GradientDerivation, ...]
    substitutions: tuple[Substitution, ...]
    samples: SampleTable
    checks: tuple[Check, ...]  # the loss first, then one per parameter
    wrong_derivative: Message | None  # what was made wrong on purpose, if anything
    reference_method: Message
    versions: Mapping[str, str]
    backward: BackwardFacts | None = None  # the tape's backward pass, node by node
    training: TrainingFacts | None = None  # None for --steps 0: the initial check only
    wrong_kind: str | None = None  # the kind of wrong derivative, e.g. "drop-factor-2"
    rounding: RoundingFacts | None = None  # k of each check: the sum's depth and the terms'

    @property
    def gradient_formula(self) -> str:
        """The formula every gradient reference comes from: "derived", or the kind of
        deliberately wrong derivative that replaced it."""
        return self.wrong_kind or "derived"

    @property
    def reference_labels(self) -> tuple[Message, ...]:
        """What each check's reference is, in order of the checks: the loss is always
        exact; a gradient's reference is the exact value of a wrong formula when the
        report demonstrates one, and must not be called exact then."""
        exact = Message.of("reference.exact")
        gradient = (
            exact
            if self.wrong_kind is None
            else Message.of("reference.wrong_formula", kind=self.wrong_kind)
        )
        return (exact, *(gradient for _ in self.checks[1:]))

    @property
    def ok(self) -> bool:
        backward_ok = self.backward is None or self.backward.ok
        training_ok = self.training is None or self.training.ok
        return all(check.ok for check in self.checks) and backward_ok and training_ok

    @property
    def inconclusive(self) -> int:
        """Values within their bound where the bound is at least half the value: the
        initial checks, the backward pass's adjoints and the training steps'."""
        return (
            sum(check.inconclusive for check in self.checks)
            + (self.backward.inconclusive if self.backward is not None else 0)
            + (self.training.inconclusive_checks if self.training is not None else 0)
        )

    @property
    def overflowed(self) -> int:
        """Values that left the dtype's range where a correct tape may (not ok)."""
        return (
            sum(check.overflowed for check in self.checks)
            + (self.backward.overflowed if self.backward is not None else 0)
            + (self.training.overflowed_checks if self.training is not None else 0)
        )

    @property
    def verdict(self) -> str:
        """fail, overflow (and nothing else failed), inconclusive (nothing failed, some
        value cannot be told from one off by a factor 2) or pass."""
        if not self.ok:
            initial = all(c.ok or c.overflowed for c in self.checks)
            backward = self.backward is None or self.backward.ok or self.backward.only_overflowed
            training = (
                self.training is None
                or self.training.ok
                or self.training.verdict == OVERFLOW
                # values that overflowed at step 0 leave nothing to train on
                or (
                    self.training.failed_checks == 0
                    and self.training.diverged_at == 0
                    and any(c.overflowed for c in self.checks)
                )
            )
            return OVERFLOW if initial and backward and training and self.overflowed else FAIL
        return INCONCLUSIVE if self.inconclusive else PASS

    def to_dict(self) -> dict[str, Any]:
        return report_to_dict(self)

    def _repr_html_(self) -> str:
        return display.html(self)


def report_to_dict(
    report: Report, sample_arrays: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The document; `sample_arrays` puts placeholders in place of the sample arrays."""
    problem = report.problem
    loss_check, *gradient_checks = report.checks
    return {
        "schema": SCHEMA_ID,
        "ok": report.ok,
        "verdict": report.verdict,
        "inconclusive": report.inconclusive,
        "overflowed": report.overflowed,
        "wrong_derivative": (
            str(report.wrong_derivative) if report.wrong_derivative is not None else None
        ),
        "gradient_formula": report.gradient_formula,
        "problem": {
            "name": problem.name,
            "source": problem.source,
            "n": problem.n,
            "dtype": problem.dtype,
            "mode": problem.mode,
            **{
                key: list(getattr(problem, key)) if sample_arrays is None else sample_arrays[key]
                for key in SAMPLE_ARRAYS
            },
            "init": dict(problem.init),
            "init_source": problem.init_source,
            "seed": problem.seed,
            "model": problem.model,
            "loss": problem.loss,
            "loss_name": problem.loss_name,
            "huber_delta": problem.huber_delta,
            "parameters": list(problem.parameters),
            "standardized": _standardized(problem),
        },
        "rounding": _rounding(report),
        "derivation": {
            "loss": problem.loss_general,
            "gradients": {
                d.parameter: {
                    "steps": [
                        {"rule": s.rule, "latex": s.latex, "verified": s.verified} for s in d.steps
                    ],
                    "result": d.result,
                    "written_out": d.written_out,
                    "verified": d.verified,
                }
                for d in report.derivations
            },
        },
        "initial": {
            "reference_method": str(report.reference_method),
            "loss": check_to_dict(loss_check),
            "gradients": {
                d.parameter: check_to_dict(c)
                for d, c in zip(report.derivations, gradient_checks, strict=True)
            },
            "per_sample": [_row(row) for row in report.samples.rows if row is not None],
            "per_sample_elided": report.samples.elided,
            "mean": {
                "loss_term": _number(report.samples.mean_loss_term),
                "shares": {k: _number(v) for k, v in report.samples.mean_shares.items()},
            },
        },
        "versions": dict(report.versions),
        "training": training_to_dict(report.training) if report.training else None,
    } | ({"backward": backward_to_list(report.backward)} if report.backward else {})


def _rounding(report: Report) -> dict[str, Any] | None:
    """k of the initial checks: the sum's depth, as the tape's order allows, and the terms'."""
    facts = report.rounding
    if facts is None:
        return None
    names = {key: "L" if key == "L" else f"dL/d{key}" for key in facts.terms}
    return {
        "order": facts.reason,
        "depth": facts.depth,
        "order_free_depth": facts.order_free_depth,
        "threads": facts.order.threads,
        "confirmed": facts.order.confirmed,
        "tensorflow": facts.order.tensorflow_version,
        "machine": facts.order.machine,
        "division": facts.division,
        "terms": {names[key]: value for key, value in facts.terms.items()},
        "roundings": {names[key]: value for key, value in facts.roundings.items()},
    }


def _standardized(problem: ProblemFacts) -> dict[str, float | list[float]] | None:
    """The moments the tape's z-scores were taken with (null: the data as given); for
    several features one mean and one std per feature, in order."""
    found = problem.standardized
    if found is None:
        return None
    one = len(found.means_x) == 1
    return {
        "mean_x": found.means_x[0] if one else list(found.means_x),
        "std_x": found.stds_x[0] if one else list(found.stds_x),
        "mean_y": found.mean_y,
        "std_y": found.std_y,
    }
