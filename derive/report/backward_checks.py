"""Each node's adjoints checked against the references: exactly (a Check per sample) up
to LISTED_LIMIT samples, else the rows the report shows exactly and every sample at
once in NumPy, with float64 references and their stated error."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..common.i18n import Message
from ..exact.adjoint_values import (
    FloatReference,
    Reference,
)
from ..exact.check import (
    INCONCLUSIVE,
    OVERFLOW,
    Check,
    Reach,
    compare,
    gamma_bound,
    has_bound,
    overflow_threshold,
)
from ..exact.expansion import two_sum
from ..exact.float_bounds import bound_at, gamma_bounds
from ..exact.kink import Kink
from ..exact.reach import largest
from ..symbolic.adjoints import (
    Vertex,
)
from .backward_facts import (
    EDGE_ROWS,
    LISTED_LIMIT,
    MAX_TABLE_ROWS,
    SHOWN_CHECKS,
    NodeCheck,
    ShownCheck,
)


def _quantity(vertex: Vertex, index: int, many: bool) -> str:
    return f"dL/d{vertex.label}" + (f" (i = {index + 1})" if many else "")


def _kept(n: int, worst: int) -> tuple[int, ...]:
    """The samples whose checks are kept: all up to LISTED_LIMIT, else the rows and the worst."""
    if n <= LISTED_LIMIT:
        return tuple(range(n))
    rows = {k for k in table_rows(n)[0] if k is not None}
    return tuple(sorted(rows | {worst}))


def _shown_checks(checks: Mapping[int, Check], n: int, worst: int) -> tuple[ShownCheck, ...]:
    if n == 1:
        return (ShownCheck("", checks[0]),)
    if n <= SHOWN_CHECKS:
        return tuple(ShownCheck(str(i + 1), checks[i]) for i in range(n))
    return (ShownCheck(Message.of("backward.worst_of", i=worst + 1, n=n), checks[worst]),)


def node_check(
    vertex: Vertex,
    reference: Reference,
    tape: Sequence[float],
    k: int,
    dtype: str,
    flushes: Sequence[Fraction],
    kinks: Mapping[int, Kink] | None = None,
    reach: np.ndarray | None = None,
) -> NodeCheck:
    """Every sample's Check, with exact differences (the exact path, and scalars).

    `flushes`: the sensitivity S to numbers flushed to zero, for each value; `kinks`:
    the samples near a kink, for an adjoint that depends on the side the tape takes (a
    scalar's sum depends on every sample); `reach`: each sample's forward reach
    (:mod:`derive.exact.reach`), for a non-finite adjoint (a scalar's: the largest).
    """
    kinks = kinks or {}

    def forward(index: int) -> Callable[[], Reach] | None:
        if reach is None:
            return None
        if len(tape) > 1:
            return lambda: Reach(float(reach[index]), index + 1)
        return lambda: largest(reach)

    checks = [
        compare(
            _quantity(vertex, index, len(tape) > 1),
            exact,
            float(value),
            gamma_bound(k, dtype, magnitude, sensitivity, reference.allowance),
            dtype,
            kink=kinks.get(index) if len(tape) > 1 else next(iter(kinks.values()), None),
            forward=forward(index),
        )
        for index, (exact, magnitude, sensitivity, value) in enumerate(
            zip(reference.values, reference.magnitudes, flushes, tape, strict=True)
        )
    ]

    def badness(check: Check) -> float:
        if check.tolerance > 0:
            return check.abs_error / check.tolerance
        return 0.0 if check.abs_error == 0 else float("inf")

    n = len(checks)
    worst = max(range(n), key=lambda i: badness(checks[i])) if n > SHOWN_CHECKS else 0
    kept = _kept(n, worst)
    failed = sum(not check.ok for check in checks)
    shown = _shown_checks(dict(enumerate(checks)), n, worst)
    return NodeCheck(
        tuple(checks[i] for i in kept),
        k,
        shown,
        kept,
        n,
        failed,
        inconclusive=sum(check.verdict == INCONCLUSIVE for check in checks),
        overflowed=sum(check.verdict == OVERFLOW for check in checks),
    )


@dataclass(frozen=True)
class Verdicts:
    """Every sample's verdict against a FloatReference, from NumPy."""

    tolerances: np.ndarray  # (gamma_k + allowance) * M_i + (1 + gamma_k) lambda S_i, rounded up
    flushes: np.ndarray  # S_i (upper bounds)
    ok: np.ndarray
    worst: int  # the sample closest to (or furthest beyond) its tolerance
    inconclusive: int = 0  # ok samples whose tolerance is at least half the reference
    overflowed: int = 0  # non-finite samples a correct tape may overflow at
    # Checks already made, by sample: nodes that pass one adjoint on share them.
    made: dict[int, Check] = dataclasses.field(default_factory=dict, compare=False)


def float_verdicts(
    reference: FloatReference,
    tape: np.ndarray,
    k: int,
    dtype: str,
    flushes: np.ndarray,
    reach: np.ndarray | None = None,
) -> Verdicts:
    """The tape against the reference at every sample, at once.

    The difference tape_i - (high_i + low_i) is computed with TwoSum and two roundings,
    so it is known to within `slack`; a sample whose difference lies within `slack` of
    its tolerance is settled exactly, in rational arithmetic.
    """
    n = tape.size
    tolerances = gamma_bounds(k, dtype, reference.magnitudes, flushes, reference.allowance)
    tolerances = np.broadcast_to(tolerances, (n,))
    finite = np.isfinite(tape)
    # k u >= 1: no bound exists, so nothing passes. A tolerance beyond float64's range
    # with a gamma_k is still a bound (M is huge), and everything finite is within it.
    bounded = has_bound(k, dtype)
    unbounded = np.isinf(tolerances) & bounded
    with np.errstate(invalid="ignore", over="ignore"):
        first, second = two_sum(tape, -reference.high)  # tape - high, exactly
        rest = second - reference.low
        differences = np.abs(first + rest)
        slack = 2.0**-51 * (differences + np.abs(rest)) + 2.0**-1074
    ok = bounded & finite & (unbounded | (differences + slack < tolerances))
    unsettled = bounded & finite & ~unbounded & ~ok & (differences - slack <= tolerances)
    for i in np.flatnonzero(unsettled):
        exact = abs(Fraction(float(tape[i])) - reference.at(int(i)))
        ok[i] = exact <= Fraction(float(tolerances[i]))
    worst = 0
    if n > SHOWN_CHECKS:
        with np.errstate(divide="ignore", invalid="ignore"):
            badness = np.where(
                tolerances > 0,
                differences / tolerances,
                np.where(differences == 0, 0.0, math.inf),
            )
        badness[~finite] = math.inf
        worst = int(np.argmax(badness))
    # Inconclusive: ok, with 2 tolerance >= |reference|; high + low is within 2^-94 M of
    # the reference, so a comparison within 2^-50 of equality is settled exactly.
    with np.errstate(invalid="ignore", over="ignore"):
        size = np.abs(reference.high + reference.low)
        loose = ok & (2 * tolerances >= size * (1 + 2.0**-50))
        near = ok & ~loose & (2 * tolerances >= size * (1 - 2.0**-50))
        reached = np.abs(reference.high) + tolerances
    if reach is not None:  # the forward pass's own values, for a non-finite adjoint
        reached = np.maximum(reached, reach)
    inconclusive = int(np.count_nonzero(loose))
    for i in np.flatnonzero(near):
        inconclusive += int(2 * Fraction(float(tolerances[i])) >= abs(reference.at(int(i))))
    # Overflow, as compare() decides it (the per-sample adjoints are no means: summed = 1).
    try:
        threshold = float(overflow_threshold(dtype))
    except OverflowError:  # float64's threshold is beyond float64: nothing reaches it
        threshold = math.inf
    signs = np.isnan(tape) | (np.sign(tape) == np.sign(reference.high)) | (reference.high == 0)
    overflowed = int(np.count_nonzero(~finite & ~unbounded & signs & (reached >= threshold)))
    return Verdicts(tolerances, np.broadcast_to(flushes, (n,)), ok, worst, inconclusive, overflowed)


def float_node_check(
    vertex: Vertex,
    reference: FloatReference,
    tape: np.ndarray,
    k: int,
    dtype: str,
    verdicts: Verdicts,
    kinks: Mapping[int, Kink] | None = None,
    reach: np.ndarray | None = None,
) -> NodeCheck:
    """Counts from the verdicts; Checks (exact differences) only for the kept samples.

    `kinks` as for :func:`node_check`: those samples are inconclusive whatever the tape."""
    n = tape.size
    kinks = kinks or {}
    if kinks:
        near = np.zeros(n, dtype=bool)
        near[list(kinks)] = True
        # Counted once: a sample near a kink that was inconclusive already stays one.
        size = np.abs(reference.high + reference.low)
        counted = verdicts.ok & (2 * verdicts.tolerances >= size)
        verdicts = dataclasses.replace(
            verdicts,
            ok=verdicts.ok | near,
            inconclusive=verdicts.inconclusive + int(np.count_nonzero(near & ~counted)),
            made={},
        )

    def check_at(i: int) -> Check:
        quantity = _quantity(vertex, i, n > 1)
        if i in verdicts.made:
            return dataclasses.replace(verdicts.made[i], quantity=quantity)
        tolerance = float(verdicts.tolerances[i])
        flushes = float(verdicts.flushes[i])
        bound = bound_at(k, dtype, reference.magnitude(i), flushes, tolerance)
        forward = None if reach is None else (lambda: Reach(float(reach[i]), i + 1))
        exact = reference.at(i)
        made = compare(quantity, exact, float(tape[i]), bound, dtype, 1, kinks.get(i), forward)
        verdicts.made[i] = made
        return made

    failed = n - int(np.count_nonzero(verdicts.ok))
    kept = _kept(n, verdicts.worst)
    checks = {i: check_at(i) for i in kept}
    shown = _shown_checks(checks, n, verdicts.worst)
    return NodeCheck(
        tuple(checks[i] for i in kept),
        k,
        shown,
        kept,
        n,
        failed,
        inconclusive=verdicts.inconclusive,
        overflowed=verdicts.overflowed,
    )


def table_rows(n: int) -> tuple[tuple[int | None, ...], int]:
    if n <= MAX_TABLE_ROWS:
        return tuple(range(n)), 0
    return (*range(EDGE_ROWS), None, *range(n - EDGE_ROWS, n)), n - 2 * EDGE_ROWS
