"""Compare the tape's numbers with exact references, with a tolerance from error analysis.

The reference is exact (rational arithmetic at the float values the tape used), so
the whole difference is the tape's rounding error. That error is bounded by

    |tape - exact| <= gamma_k * M + (1 + gamma_k) * lambda * S,   gamma_k = k u / (1 - k u),

where u is the unit roundoff of the tape's dtype (2^-24 for float32), k the number
of roundings on the longest chain of operations, and M the same computation done
on absolute values (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3).
The second term covers numbers flushed to zero below the smallest normal number
lambda; S, their sensitivity, comes from :mod:`derive.exact.underflow`. It matters only
for values near lambda (about 1e-38 in float32).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from ..common.i18n import Message
from ..common.numbers import as_float, round_up
from .formats import (  # the formats' constants, where checks have always found them
    PRECISION_BITS,
    SMALLEST_NORMAL,
    largest_finite,
    overflow_threshold,
    ulp,
    unit_roundoff,
)

if TYPE_CHECKING:
    from .kink import Kink

# The four verdicts. `pass` and `inconclusive` are ok (the run passes); `fail` and
# `overflow` are not.
PASS, FAIL, INCONCLUSIVE, OVERFLOW = "pass", "fail", "inconclusive", "overflow"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, OVERFLOW)
# From the best to the worst: a badge or border that stands for several checks shows
# the worst of them (an inconclusive value spoils a pass, an overflow that, a fail all).
SEVERITY = (PASS, INCONCLUSIVE, OVERFLOW, FAIL)


def worst_verdict(verdicts: Iterable[str]) -> str:
    """The worst of these verdicts (pass for none)."""
    return max(verdicts, key=SEVERITY.index, default=PASS)


# A value off by this factor (a dropped factor 2, the commonest slip in a derivative)
# must fail for a pass to mean something: a check whose tolerance is at least
# |reference| (1 - 1/FACTOR) = |reference| / 2 would pass it too.
TELLS_APART = Fraction(1, 2)


@functools.lru_cache(maxsize=256)
def gamma_of(roundings: int, dtype: str) -> Fraction | None:
    """gamma_k = k u / (1 - k u), or None when k u >= 1 (no bound)."""
    u = unit_roundoff(dtype)
    return None if roundings * u >= 1 else roundings * u / (1 - roundings * u)


def has_bound(roundings: int, dtype: str) -> bool:
    """Whether gamma_k exists (k u < 1). Without it there is no bound, and no check passes."""
    return gamma_of(roundings, dtype) is not None


def underflow_allowance(roundings: int, dtype: str, sensitivity: Fraction) -> Fraction:
    """(1 + gamma_k) lambda S: TensorFlow on the CPU flushes numbers below the smallest
    normal number lambda to zero, each flush losing less than lambda, and S (see
    :mod:`derive.exact.underflow`) bounds how far those losses travel. The factor 1 + gamma_k:
    S is built from exact magnitudes, the tape multiplies by rounded ones."""
    gamma = gamma_of(roundings, dtype)
    assert gamma is not None, "no bound at all when k u >= 1"
    return (1 + gamma) * Fraction(SMALLEST_NORMAL[dtype]) * sensitivity


@dataclass(frozen=True)
class Reach:
    """The largest magnitude a forward pass reaches on the way to the residuals, and
    the sample (1-based) where: derive.exact.reach."""

    magnitude: float  # may be inf: beyond float64 as well
    sample: int


@dataclass(frozen=True)
class Bound:
    """gamma_k * magnitude, and the numbers it is made of."""

    roundings: int  # k
    precision_bits: int  # p, with u = 2^-p
    unit_roundoff: float  # u
    smallest_normal: float  # lambda: below it, TensorFlow flushes numbers to zero
    gamma: float  # k u / (1 - k u)
    magnitude: float  # M: the computation on absolute values
    sensitivity: float  # S: how far numbers flushed to zero can move the result
    underflow: float  # (1 + gamma) lambda S
    value: float  # gamma * M + underflow, the tolerance


def rounding_bound(
    dtype: str,
    magnitude: Fraction,
    sensitivity: Fraction,
    exact_reference: bool = True,
    *,
    roundings: int,
) -> Bound:
    """gamma_k * M + (1 + gamma_k) lambda S for the loss or a gradient; when the
    reference is not exact, plus its own error (2^-52 * M).

    `roundings`: k as counted for the tape and the model's entry
    (:func:`derive.exact.roundings.tape_roundings`: the depth of its sum plus the
    roundings of one term). There is no default: a count that holds for one model
    is no bound for another."""
    allowance = Fraction(0) if exact_reference else Fraction(1, 2**52)
    return gamma_bound(roundings, dtype, magnitude, sensitivity, allowance)


@dataclass(frozen=True)
class Check:
    """One number computed two ways, and whether they agree within the bound."""

    quantity: str  # e.g. "dL/dW"
    reference: float  # the exact value, rounded to float64 for display
    tape: float
    abs_error: float
    rel_error: float | None  # None when the reference is 0
    ulps: float  # |tape - reference| in ULPs of the tape's dtype at the reference
    tolerance: float
    bound: Bound
    ok: bool  # the verdict is pass or inconclusive: nothing found wrong
    # |tape - reference| / tolerance: at most 1 within the bound (0 for an infinite
    # tolerance; inf for a non-finite tape, no bound at all, or a zero tolerance missed)
    used: float = math.nan
    # tolerance / |reference|: the smallest relative error this check can flag here;
    # inf when the reference is 0 (no relative error can be flagged: 0 / 2 = 0)
    resolution: float = math.nan
    verdict: str = PASS  # pass, fail, inconclusive or overflow (see compare)
    error_um: float = math.nan  # |tape - reference| / (u M): the error in units of u M
    condition: float = math.nan  # kappa = M / |reference| (inf when the reference is 0)
    dtype: str = "float32"
    # overflow: the exact magnitude that reached the dtype's range (the value, or n times
    # it for the sum the tape forms before dividing by n), and that n
    overflow_magnitude: float = math.nan
    summed: int = 1
    kink: Kink | None = None  # a sample the tape may put on the other side of a kink
    # overflow on the way: the forward pass's reach (derive.exact.reach) and its sample
    forward_reach: float = math.nan
    forward_sample: int = 0

    @property
    def inconclusive(self) -> bool:
        return self.verdict == INCONCLUSIVE

    @property
    def overflowed(self) -> bool:
        return self.verdict == OVERFLOW

    @property
    def reason(self) -> Message | None:
        """Why the verdict is inconclusive or overflow, in words."""
        return verdict_reason(self)


def _ratio(numerator: Fraction, denominator: Fraction) -> float:
    """numerator / denominator as a float: inf for x / 0 with x > 0, 0 for 0 / 0."""
    if denominator == 0:
        return 0.0 if numerator == 0 else math.inf
    return as_float(numerator / denominator)


def _share(difference: Fraction, tolerance: Fraction) -> float:
    """difference / tolerance rounded up, so that used <= 1 exactly when within the bound."""
    if tolerance == 0:
        return 0.0 if difference == 0 else math.inf
    try:
        return round_up(difference / tolerance)
    except OverflowError:
        return math.inf


def compare(
    quantity: str,
    reference: Fraction,
    tape: float,
    bound: Bound,
    dtype: str,
    summed: int = 1,
    kink: Kink | None = None,
    forward: Callable[[], Reach] | None = None,
) -> Check:
    """Exact difference between the tape and the reference, judged against the bound.

    The verdict:

    - ``fail``: beyond the bound, or a non-finite tape that is not an overflow. A bound
      without a value (gamma_k undefined, k u >= 1) never passes.
    - ``overflow``: the tape is not finite (inf of the reference's sign, or NaN), and a
      correct computation may leave the dtype's range: the exact value, or the sum of
      `summed` terms the tape forms before dividing by `summed` (the mean: pass n for
      the loss), plus its rounding-error bound (the tolerance, times `summed` for the
      sum), reaches the smallest magnitude that rounds to infinity; so may a step on
      the way, each at most M (2M for a NaN: before a product with 1/2). The computed sum
      lies within summed * tolerance of the exact one (the tolerance bounds the error of
      the whole mean, the sum's included), so below that threshold no correct tape
      overflows and an inf is a failure. The forward pass may leave the range too,
      before any of the quantity's own terms (`forward`, asked only here: the residuals'
      reach, :mod:`derive.exact.reach`). Not ok: the value is lost.
    - ``inconclusive``: within the bound, but the bound is at least half the value
      (resolution >= 1/2): the same value off by a factor of two would pass as well,
      so the check cannot tell a right derivative from a wrong one here (near the
      optimum the gradient is smaller than its own rounding noise). Ok: nothing was
      found wrong, but nothing was shown either.
    - ``pass``: within the bound, and a value off by a factor of two would fail.
    """
    magnitude = Fraction(bound.magnitude) if math.isfinite(bound.magnitude) else None
    tolerance = Fraction(bound.value) if math.isfinite(bound.value) else None
    size = abs(reference)
    u = Fraction(bound.unit_roundoff)  # the bound's: the optimizer's float32 for updates
    resolution = math.inf if tolerance is None or size == 0 else as_float(tolerance / size)
    condition = math.inf if magnitude is None or size == 0 else as_float(magnitude / size)
    common = {
        "quantity": quantity,
        "reference": as_float(reference),
        "tape": tape,
        "tolerance": bound.value,
        "bound": bound,
        "resolution": resolution,
        "condition": condition,
        "dtype": dtype,
        "summed": summed,
    }
    if not math.isfinite(tape):
        # Besides the value itself, a step on the way may leave the range: each is at
        # most M (the computation on absolute values). A NaN (0 * inf, inf - inf) comes
        # from such a step, which may be twice M before a product with 1/2 (Huber's 2r
        # in Square's gradient); below that no correct tape overflows anywhere
        factor = 2 if math.isnan(tape) else 1
        on_the_way = factor * magnitude if magnitude is not None else 0
        reach = summed * (max(size, on_the_way) + (tolerance if tolerance is not None else 0))
        sign_ok = math.isnan(tape) or reference == 0 or (tape > 0) == (reference > 0)
        threshold = overflow_threshold(dtype)
        # A tolerance beyond float64 with a gamma_k is still a bound: M is that large,
        # and so may be a step on the way
        bounded = tolerance is not None or math.isfinite(bound.gamma)
        overflow = bounded and sign_ok and (magnitude is None or reach >= threshold)
        on_forward = forward() if forward is not None else None
        reached = on_forward is not None and on_forward.magnitude >= threshold
        overflow = overflow or reached
        return Check(
            abs_error=math.inf,
            rel_error=math.inf,
            ulps=math.inf,
            ok=False,
            used=math.inf,
            verdict=OVERFLOW if overflow else FAIL,
            error_um=math.inf,
            overflow_magnitude=as_float(summed * size) if overflow else math.nan,
            forward_reach=on_forward.magnitude if reached else math.nan,  # type: ignore[union-attr]
            forward_sample=on_forward.sample if reached else 0,  # type: ignore[union-attr]
            **common,
        )
    difference = abs(Fraction(tape) - reference)
    rel_error = as_float(difference / size) if reference else None
    # No gamma_k (k u >= 1): there is no bound, so nothing is verified and the check
    # fails, whatever the difference. A finite gamma_k with an infinite tolerance is a
    # bound beyond the float range (M or S overflowed float64): any finite tape passes.
    bounded = math.isfinite(bound.gamma)
    within = bounded and (tolerance is None or difference <= tolerance)
    if kink is not None:  # the tape may rightly be on the kink's other side: no verdict
        verdict, within = INCONCLUSIVE, True
    elif not within:
        verdict = FAIL
    elif tolerance is None or tolerance >= TELLS_APART * size:
        verdict = INCONCLUSIVE
    else:
        verdict = PASS
    return Check(
        abs_error=as_float(difference),
        rel_error=rel_error,
        ulps=as_float(difference) / ulp(as_float(reference), dtype),
        ok=within,
        used=(
            math.inf if not bounded else 0.0 if tolerance is None else _share(difference, tolerance)
        ),
        verdict=verdict,
        error_um=math.inf if magnitude is None else _ratio(difference, u * magnitude),
        kink=kink,
        **common,
    )


def verdict_reason(check: Check) -> Message | None:
    """Why a check is inconclusive or an overflow, in words (None for pass and fail)."""
    if check.verdict == INCONCLUSIVE:
        if check.kink is not None:
            return check.kink.reason(check.quantity)
        if not math.isfinite(check.resolution) and check.reference == 0:
            return Message.of("reason.inconclusive_zero", quantity=check.quantity)
        return Message.of(
            "reason.inconclusive",
            quantity=check.quantity,
            tolerance=f"{check.tolerance:.3g}",
            reference=f"{abs(check.reference):.3g}",
            ratio=f"{check.resolution:.3g}",
        )
    if check.verdict == OVERFLOW:
        threshold = overflow_threshold(check.dtype)
        fields = {
            "quantity": check.quantity,
            "dtype": check.dtype,
            "largest": f"{float(largest_finite(check.dtype)):.9g}",
            # an exact value beyond float64 itself is written as a bound, not "inf"
            "value": (
                f"{abs(check.reference):.4g}"
                if math.isfinite(check.reference)
                else f"> {sys.float_info.max:.4g}"
            ),
        }

        def beyond(value: float) -> bool:
            return not math.isfinite(value) or Fraction(value) >= threshold

        if beyond(abs(check.reference)):
            return Message.of("reason.overflow_value", **fields)
        if check.summed > 1 and beyond(check.overflow_magnitude):
            return Message.of(
                "reason.overflow_sum",
                n=check.summed,
                sum=f"{check.overflow_magnitude:.4g}",
                **fields,
            )
        if check.forward_sample:
            return Message.of(
                "reason.overflow_forward",
                sample=check.forward_sample,
                reach=f"{check.forward_reach:.4g}",
                **fields,
            )
        return Message.of("reason.overflow_near", **fields)
    return None


def gamma_bound(
    roundings: int,
    dtype: str,
    magnitude: Fraction,
    sensitivity: Fraction,
    allowance: Fraction = Fraction(0),
) -> Bound:
    """gamma_k * M + (1 + gamma_k) lambda S for a computation whose longest chain has
    exactly k = `roundings` roundings and whose flushes to zero have sensitivity S.

    k = 0 (nothing rounded) with S = 0 gives a tolerance of 0: the tape must match
    exactly. `allowance` * M is added for a reference that is not exact (its own error).
    """
    u = unit_roundoff(dtype)
    gamma = gamma_of(roundings, dtype)
    if gamma is None:
        return Bound(
            roundings,
            PRECISION_BITS[dtype],
            float(u),
            SMALLEST_NORMAL[dtype],
            math.inf,
            as_float(magnitude),
            as_float(sensitivity),
            math.inf,
            math.inf,
        )
    underflow = underflow_allowance(roundings, dtype, sensitivity)
    return Bound(
        roundings,
        PRECISION_BITS[dtype],
        float(u),
        SMALLEST_NORMAL[dtype],
        float(gamma),
        as_float(magnitude),
        as_float(sensitivity),
        as_float(underflow),
        as_float((gamma + allowance) * magnitude + underflow),
    )
