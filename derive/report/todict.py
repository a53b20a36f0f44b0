"""The Report as JSON (schema: derive/schema/report.schema.json)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..common.numbers import as_float

if TYPE_CHECKING:
    from ..exact.check import Check
    from .backward_facts import BackwardFacts
    from .facts import SampleRow
    from .training_facts import Failure, TrainingFacts

SCHEMA_ID = "derive-report/1"


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity; those become null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def check_to_dict(check: Check) -> dict[str, Any]:
    return {
        "quantity": check.quantity,
        "reference": _number(check.reference),
        "tape": _number(check.tape),
        "abs_error": _number(check.abs_error),
        "rel_error": _number(check.rel_error),
        "ulps": _number(check.ulps),
        "tolerance": _number(check.tolerance),
        "bound": {
            "roundings": check.bound.roundings,
            "unit_roundoff": check.bound.unit_roundoff,
            "smallest_normal": check.bound.smallest_normal,
            "gamma": _number(check.bound.gamma),
            "magnitude": _number(check.bound.magnitude),
            "sensitivity": _number(check.bound.sensitivity),
            "underflow": _number(check.bound.underflow),
        },
        "ok": check.ok,
        "verdict": check.verdict,
        "used": _number(check.used),
        "resolution": _number(check.resolution),
        "error_um": _number(check.error_um),
        "condition": _number(check.condition),
        "reason": _reason(check),
    }


def _reason(check: Check) -> str | None:
    from ..exact.check import verdict_reason

    reason = verdict_reason(check)
    return None if reason is None else str(reason)


def _row(row: SampleRow) -> dict[str, Any]:
    return {
        "i": row.i,
        "x": row.x[0] if len(row.x) == 1 else list(row.x),
        "y": row.y,
        "prediction": _number(row.prediction),
        "residual": _number(row.residual),
        "loss_term": _number(row.loss_term),
        "shares": {name: _number(value) for name, value in row.shares.items()},
    }


def backward_to_list(backward: BackwardFacts) -> list[dict[str, Any]]:
    """The watched nodes in forward order; x and y (constants, no adjoint) are problem.x, .y.

    `value` and `adjoint` hold one entry per sample, or one for a scalar; `check` holds
    the same per-entry lists, the rounding count k of the bound, and the verdict.

    Beyond ``backward_facts.LISTED_LIMIT`` samples (10,000) the per-sample lists are abridged:
    a per-sample node's `value`, `adjoint` and `check` lists hold only the samples the
    report shows (the first and last table rows, and the node's worst sample), `rows`
    gives their 1-based sample indices, and `check` adds `samples` (how many were
    checked: all of them) and `failed` (how many are beyond their bound).
    """
    nodes = []
    for node in backward.checked:
        assert node.check is not None and node.adjoints is not None
        checks = node.check.checks
        abridged = not node.check.complete
        indices = node.check.indices if abridged else range(len(node.values))
        entry: dict[str, Any] = {
            "name": node.name,
            "op": node.op,
            "tf_op": node.tf_op,
            "inputs": list(node.inputs),
            "value": [_number(node.values[i]) for i in indices],
            "adjoint": [_number(node.adjoints[i]) for i in indices],
        }
        if abridged:
            entry["rows"] = [i + 1 for i in indices]
        entry["expected"] = node.expected
        entry["check"] = {
            "reference": [_number(c.reference) for c in checks],
            "tape": [_number(c.tape) for c in checks],
            "abs_error": [_number(c.abs_error) for c in checks],
            "ulps": [_number(c.ulps) for c in checks],
            "tolerance": [_number(c.tolerance) for c in checks],
            "used": [_number(c.used) for c in checks],
            "resolution": [_number(c.resolution) for c in checks],
            "verdict": [c.verdict for c in checks],
            "roundings": node.check.roundings,
            "expected_verified": node.expected_verified,
            "ok": node.ok,
            "inconclusive": node.check.inconclusive,
            "overflowed": node.check.overflowed,
        }
        if abridged:
            entry["check"] |= {"samples": node.check.samples, "failed": node.check.failed}
        nodes.append(entry)
    return nodes


def _failure(failure: Failure | None) -> dict[str, Any] | None:
    if failure is None:
        return None
    return {"step": failure.step, "check": check_to_dict(failure.check)}


def _maybe_numbers(values: Mapping[str, float] | None) -> dict[str, float | None] | None:
    return None if values is None else {name: _number(v) for name, v in values.items()}


def _stability(training: TrainingFacts) -> dict[str, Any] | None:
    found = training.stability
    if found is None:
        return None
    return {
        "hessian": [[_number(as_float(v)) for v in row] for row in found.hessian.values],
        "local": found.local,
        "eigenvalues": [_number(v) for v in found.eigenvalues],
        "condition": _number(found.condition),
        "stable": found.stable,
        "ratio": _number(found.ratio) if found.ratio is not None else None,
        "suggested_lr": found.suggested_lr,
        "tolerance": found.tolerance,
        "steps_needed": _number(found.steps_needed) if found.steps_needed is not None else None,
        "remaining": _number(found.remaining) if found.remaining is not None else None,
    }


def training_to_dict(training: TrainingFacts) -> dict[str, Any]:
    optimum = training.optimum
    stability = training.stability
    return {
        "steps": training.steps,
        "learning_rate": training.learning_rate,
        "learning_rate_held": training.learning_rate_held,
        "learning_rate_change": training.learning_rate_change,
        "display_step": training.display_step,
        "engine": training.engine,
        "steps_checked": training.steps_checked,
        "checks_made": training.checks_made,
        "failed_checks": training.failed_checks,
        "ok": training.ok,
        "first_failing_step": training.first_failing_step,
        "first_failure": _failure(training.first_failure),
        "diverged_at": training.diverged_at,
        "max_ulps": _number(training.max_ulps),
        "max_used": _number(training.max_used),
        "max_used_step": training.most_used.step if training.most_used else None,
        "max_used_quantity": training.most_used.check.quantity if training.most_used else None,
        "inconclusive_checks": training.inconclusive_checks,
        "overflowed_checks": training.overflowed_checks,
        "first_inconclusive": _failure(training.first_inconclusive),
        "max_rel_error": _number(training.max_rel_error),
        "max_update_ulps": _number(training.max_update_ulps),
        "worst": _failure(training.worst),
        "updates_checked": training.updates_checked,
        "bit_exact_updates": training.bit_exact_updates,
        "final": {
            "step": training.final_step,
            **{name: _number(v) for name, v in training.final.items()},
            "loss": _number(training.final_loss),
        },
        "optimum": None
        if optimum is None
        else {
            **{name: v for name, v in optimum.parameters.items()},
            "loss": optimum.loss,
            "distance": {name: _number(v) for name, v in optimum.distance.items()},
            "loss_gap": _number(optimum.loss_gap),
        },
        "optimum_note": training.optimum_note or None,
        "stable_lr": _number(stability.stable_lr) if stability else None,
        "curvature": training.curvature,
        "stability": _stability(training),
        "final_original_units": _maybe_numbers(training.final_original),
        "optimum_original_units": _maybe_numbers(training.optimum_original),
        "displayed": [
            {
                "step": row.step,
                "parameters": {name: _number(v) for name, v in row.parameters.items()},
                "loss": _number(row.loss),
                "gradients": {
                    name: {"reference": _number(row.reference[name]), "tape": _number(v)}
                    for name, v in row.tape.items()
                },
                "worst_ulps": _number(row.worst_ulps),
                "worst_used": _number(row.worst_used),
                "ok": row.ok,
                "verdict": row.verdict,
                "finite": row.finite,
            }
            for row in training.rows
        ],
    }


SAMPLE_ARRAYS = ("x", "y", "x_given", "y_given")  # the problem's fields that grow with n
