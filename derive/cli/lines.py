"""What the terminal shows: one line per checked value (the share of its bound used,
the error in u*M, ULPs last), the summary, the stability warning before training, the
training's tally."""

from __future__ import annotations

import math

# lambda_max / lambda_min beyond which --standardize is worth suggesting
ILL_CONDITIONED = 100.0


VERDICT_WORDS = {"pass": "pass", "fail": "FAIL", "inconclusive": "INCONCLUSIVE",
                 "overflow": "OVERFLOW"}  # fmt: skip


def _percent(share: float) -> str:
    """A share of the bound as a percentage: 7.2 %, 0.031 %, 2.8e-08 %."""
    if not math.isfinite(share):
        return "inf"
    percent = 100 * share
    return f"{percent:.2g} %" if percent >= 1e-3 or percent == 0 else f"{percent:.1e} %"


def check_lines(check, source: str) -> list[str]:  # type: ignore[no-untyped-def]
    """One checked value on the terminal, one unit a line: the two numbers; the
    difference against the tolerance and the share of the bound it uses, with the
    verdict; the error in u*M, then in ULPs with the condition number beside them; and
    the reason for an inconclusive or overflow verdict."""
    from ..exact.check import verdict_reason

    pad = " " * 11
    lines = [
        f"  {check.quantity:<8} {source + ':':<12} {check.reference:>+17.9g}   "
        f"tape: {check.tape:>+17.9g}"
    ]
    verdict = VERDICT_WORDS[check.verdict]
    if math.isfinite(check.tape):
        lines.append(
            f"{pad}difference {check.abs_error:.2g}, tolerance {check.tolerance:.2g}: "
            f"uses {_percent(check.used)} of its bound   {verdict}"
        )
        lines.append(
            f"{pad}error {check.error_um:.3g} u*M;  {check.ulps:.3g} ULP at "
            f"condition M/|value| = {check.condition:.3g}"
        )
    else:
        lines.append(f"{pad}the tape's value is not finite (tolerance {check.tolerance:.2g})   "
                     f"{verdict}")  # fmt: skip
    reason = verdict_reason(check)
    if reason is not None:
        lines.append(f"{pad}{check.verdict}: {reason}")
    return lines


def _values(count: int) -> str:
    return f"{count} value" + ("" if count == 1 else "s")


def summary_line(report) -> str:  # type: ignore[no-untyped-def]
    """The last line: never "all checks passed" while a value is inconclusive."""
    verdict = report.verdict
    if verdict == "pass":
        return "all checks passed"
    if verdict == "fail":
        return "SOME CHECKS FAILED"
    where = []
    kind = "inconclusive" if verdict == "inconclusive" else "overflowed"
    names = [c.quantity for c in report.checks if getattr(c, kind)]
    if names:
        where.append(", ".join(names))
    count = getattr(report, kind)
    backward = report.backward and getattr(report.backward, kind)
    training = report.training and getattr(
        report.training, "inconclusive_checks" if kind == "inconclusive" else "overflowed_checks"
    )
    # A part that holds every such value is named without repeating the count.
    if backward:
        where.append(
            "all in the backward pass"
            if backward == count
            else f"{_values(backward)} of the backward pass"
        )
    if training:
        where.append("all in training" if training == count else f"{_values(training)} in training")
    if verdict == "inconclusive":
        return (
            f"no check failed; {_values(count)} {'is' if count == 1 else 'are'} inconclusive: "
            + "; ".join(where)
            + (
                " (a residual within its rounding error of a kink, or a bound of at least half "
                "the value)"
                if any(c.kink is not None for c in report.checks)
                else " (within a bound of at least half the value: a value off by a factor 2 "
                "would pass as well)"
            )
        )
    return (
        f"OVERFLOW: {_values(count)} left {report.problem.dtype}'s range: "
        + "; ".join(where)
        + " (no check failed otherwise)"
    )


def stability_lines(problem) -> list[str]:  # type: ignore[no-untyped-def]
    """Before training: a learning rate at or above 2 / lambda_max, or too few steps."""
    from ..exact.stability import rate_bound
    from ..report.build import symbolic_for

    found = rate_bound(problem, symbolic_for(problem))
    if found is None:
        return []  # no Hessian bounds the rate: the report says what does instead
    where = " at the initial values" if found.local else ""
    if found.stable_lr is not None and not found.stable:
        return [
            f"  WARNING: learning rate {found.learning_rate:g} is {found.ratio:.3g} times the "
            f"stable limit 2/lambda_max = {found.stable_lr:.3g}{where} (lambda_max = "
            f"{found.lambda_max:.3g}, the largest eigenvalue of the loss's Hessian): "
            f"training will diverge; {_remedy(found, problem.standardized is not None)}"
        ]
    if found.too_few_steps and problem.loss_entry.curvature == "hessian":
        return [
            f"  note: the slowest direction needs about {found.steps_needed:.2g} steps at "
            f"learning rate {found.learning_rate:g} to shrink its error by "
            f"{found.tolerance:g} (lambda_max/lambda_min = {found.condition:.3g}{where}); "
            f"after {found.steps} steps {found.remaining:.2g} of it is left"
            + (
                "; try --standardize"
                if problem.standardized is None and found.condition > ILL_CONDITIONED
                else ""
            )
        ]
    return []


def training_lines(training) -> list[str]:  # type: ignore[no-untyped-def]
    final = ", ".join(f"{k} = {v:.8g}" for k, v in training.final.items())
    lines = [
        f"  training: {training.steps_checked} of {training.steps} steps checked "
        f"({training.checks_made} values)"
    ]
    if training.most_used is not None:
        used = training.most_used.check
        lines.append(
            f"    worst uses {_percent(training.max_used)} of its bound: {used.quantity}, "
            f"step {training.most_used.step} (error {used.error_um:.3g} u*M)"
        )
    if training.worst is not None:
        worst = training.worst.check
        lines.append(
            f"    largest in ULPs: {training.max_ulps:.3g} ULP ({worst.quantity}, step "
            f"{training.worst.step}, at condition M/|value| = {worst.condition:.3g})"
        )
    if training.first_inconclusive is not None:
        first = training.first_inconclusive
        lines.append(
            f"    inconclusive: {_values(training.inconclusive_checks)}, the first "
            f"{first.check.quantity} at step {first.step}: "
            + (
                f"sample {first.check.kink.sample}'s residual is within its rounding error "
                "of a kink"
                if first.check.kink is not None
                else f"its bound is {first.check.resolution:.3g} times the value"
            )
        )
    lines.append(f"  after step {training.final_step}: {final}, loss = {training.final_loss:.8g}")
    if training.first_failure is not None:
        check = training.first_failure.check
        lines.append(
            f"  FIRST FAILING CHECK at step {training.first_failure.step}: {check.quantity} "
            f"uses {_percent(check.used)} of its bound (difference {check.abs_error:.2g}, "
            f"tolerance {check.tolerance:.2g}; {check.ulps:.3g} ULP)"
        )
    if training.diverged_at is not None:
        lines.append(
            f"  DIVERGED: values became non-finite at step {training.diverged_at}"
            + (
                " (OVERFLOW: beyond the dtype's range exactly too)"
                if training.verdict == "overflow"
                else ""
            )
            + "; checking stopped there"
            + _stable_rate_hint(training)
        )
    return lines


def _stable_rate_hint(training) -> str:  # type: ignore[no-untyped-def]
    found = training.stability
    if found is None or found.stable_lr is None:
        return ""
    return (
        f"; learning rates below 2/lambda_max = {found.stable_lr:.3g} are stable "
        f"({_remedy(found, training.standardized is not None)})"
    )


def _remedy(found, standardized: bool) -> str:  # type: ignore[no-untyped-def]
    """What to try: --standardize first when the stable rate alone would need far more
    steps than requested."""
    if not found.suggested_lr:  # lambda_max beyond float64: no rate is small enough
        return "scale the data" if standardized else "try --standardize"
    rate = f"--lr {found.suggested_lr:g}"
    if standardized:
        return f"try {rate}"
    if not found.rate_alone_too_slow:
        return f"try {rate} or --standardize"
    return (
        f"try --standardize: at {rate} alone the run would need about "
        f"{found.steps_at_suggested:.2g} steps to get close, not {found.steps}"
    )
