"""Compare the tape's numbers with exact references, with a tolerance from error analysis.

The reference is exact (rational arithmetic at the float values the tape used), so
the whole difference is the tape's rounding error. That error is bounded by

    |tape - exact| <= gamma_k * M,   gamma_k = k u / (1 - k u),

where u is the unit roundoff of the tape's dtype (2^-24 for float32), k the number
of roundings on the longest chain of operations, and M the same computation done
on absolute values (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# Roundings on the longest chain for one gradient of the mean squared error, beyond
# the n - 1 additions of the sum: 3 in the residual W*x_i + b - y_i (counted twice
# where the residual is squared), 1 for the square or the product with x_i, 1 for
# the division by n, 1 more for the product with x_i in the backward pass. Rounded
# up, so the bound holds for the forward loss and both gradients.
EXTRA_ROUNDINGS = 8

PRECISION_BITS = {"float32": 24, "float64": 53}


def unit_roundoff(dtype: str) -> Fraction:
    return Fraction(1, 2 ** PRECISION_BITS[dtype])


# The smallest positive (subnormal) number of each dtype: the spacing of the floats
# near zero. And the smallest normal number: what an underflowing result can lose.
SMALLEST_SUBNORMAL = {"float32": 2.0**-149, "float64": 2.0**-1074}
SMALLEST_NORMAL = {"float32": 2.0**-126, "float64": 2.0**-1022}


def ulp(value: float, dtype: str) -> float:
    """Spacing of the dtype's floats at |value| (near zero: the smallest subnormal)."""
    bits = PRECISION_BITS[dtype]
    if value == 0 or not math.isfinite(value):
        return SMALLEST_SUBNORMAL[dtype]
    _, exponent = math.frexp(abs(value))
    return max(math.ldexp(1.0, exponent - bits), SMALLEST_SUBNORMAL[dtype])


def underflow_allowance(roundings: int, dtype: str) -> Fraction:
    """k * tiny: a result too small for normal numbers may lose everything below the
    smallest normal number -- TensorFlow on the CPU flushes subnormal results to zero --
    beyond the relative error u. Negligible unless the values are tiny."""
    return roundings * Fraction(SMALLEST_NORMAL[dtype])


@dataclass(frozen=True)
class Bound:
    """gamma_k * magnitude, and the numbers it is made of."""

    roundings: int  # k
    precision_bits: int  # p, with u = 2^-p
    unit_roundoff: float  # u
    gamma: float  # k u / (1 - k u)
    magnitude: float  # M: the computation on absolute values
    value: float  # gamma * M, the tolerance


def rounding_bound(n: int, dtype: str, magnitude: Fraction, exact_reference: bool = True) -> Bound:
    """gamma_k * M for the loss or a gradient over n samples (k = n - 1 + 8); when the
    reference is not exact, plus its own error (2^-52 * M)."""
    allowance = Fraction(0) if exact_reference else Fraction(1, 2**52)
    return gamma_bound(n - 1 + EXTRA_ROUNDINGS, dtype, magnitude, allowance)


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
    ok: bool


def compare(
    quantity: str,
    reference: Fraction,
    tape: float,
    bound: Bound,
    dtype: str,
) -> Check:
    """Exact difference between the tape and the reference, judged against the bound."""
    if not math.isfinite(tape):
        return Check(
            quantity,
            float(reference),
            tape,
            math.inf,
            math.inf,
            math.inf,
            bound.value,
            bound,
            False,
        )
    difference = abs(Fraction(tape) - reference)
    rel_error = float(difference / abs(reference)) if reference else None
    return Check(
        quantity=quantity,
        reference=float(reference),
        tape=tape,
        abs_error=float(difference),
        rel_error=rel_error,
        ulps=float(difference) / ulp(float(reference), dtype),
        tolerance=bound.value,
        bound=bound,
        ok=math.isinf(bound.value) or difference <= Fraction(bound.value),
    )


def gamma_bound(
    roundings: int, dtype: str, magnitude: Fraction, allowance: Fraction = Fraction(0)
) -> Bound:
    """gamma_k * M for a computation whose longest chain has exactly k = `roundings` roundings.

    k = 0 (nothing rounded) gives a tolerance of 0: the tape must match exactly.
    `allowance` * M is added for a reference that is not exact (its own error).
    """
    u = unit_roundoff(dtype)
    if roundings * u >= 1:
        return Bound(
            roundings, PRECISION_BITS[dtype], float(u), math.inf, float(magnitude), math.inf
        )
    gamma = roundings * u / (1 - roundings * u)
    return Bound(
        roundings,
        PRECISION_BITS[dtype],
        float(u),
        float(gamma),
        float(magnitude),
        float((gamma + allowance) * magnitude + underflow_allowance(roundings, dtype)),
    )


def gamma_bounds(
    roundings: int, dtype: str, magnitudes: np.ndarray, allowance: Fraction
) -> np.ndarray:
    """(gamma_k + allowance) * M_i for many magnitudes at once, in float64.

    Every result is rounded up (never below the exact product), so it stays a bound.
    """
    u = unit_roundoff(dtype)
    if roundings * u >= 1:
        return np.full(magnitudes.shape, math.inf)
    factor = roundings * u / (1 - roundings * u) + allowance
    factor_up = float(factor)
    if Fraction(factor_up) < factor:
        factor_up = math.nextafter(factor_up, math.inf)
    product = factor_up * magnitudes
    # One step up covers the rounding of the product, and an underflow to 0 as well.
    exact_zero = (magnitudes == 0) | (factor_up == 0)
    bounds = np.where(exact_zero, 0.0, np.nextafter(product, math.inf))
    underflow = float(underflow_allowance(roundings, dtype))
    # Adding a tiny allowance may round down; step up once more where it was added.
    return bounds if underflow == 0 else np.nextafter(bounds + underflow, math.inf)


def bound_at(roundings: int, dtype: str, magnitude: float, tolerance: float) -> Bound:
    """The Bound of one entry of :func:`gamma_bounds`: its magnitude and tolerance as given."""
    u = unit_roundoff(dtype)
    gamma = math.inf if roundings * u >= 1 else float(roundings * u / (1 - roundings * u))
    return Bound(roundings, PRECISION_BITS[dtype], float(u), gamma, magnitude, tolerance)
