"""The bound of :mod:`derive.exact.check` for many samples at once, in float64 rounded
up, for the NumPy verdicts of large data; and the Bound of one entry of those."""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

from .check import PRECISION_BITS, SMALLEST_NORMAL, Bound, gamma_of, round_up, unit_roundoff


def gamma_bounds(
    roundings: int,
    dtype: str,
    magnitudes: np.ndarray,
    sensitivities: np.ndarray,
    allowance: Fraction,
) -> np.ndarray:
    """(gamma_k + allowance) * M_i + (1 + gamma_k) lambda S_i for many samples at once,
    in float64.

    Every product and sum is rounded up (never below the exact one), so it stays a bound.
    """
    gamma = gamma_of(roundings, dtype)
    if gamma is None:
        return np.full(np.broadcast(magnitudes, sensitivities).shape, math.inf)
    factor = round_up(gamma + allowance)
    underflow_factor = _underflow_factor(roundings, dtype)

    def product_up(factor: float, values: np.ndarray) -> np.ndarray:
        # One step up covers the rounding of the product, and an underflow to 0 as well.
        exact_zero = (values == 0) | (factor == 0)
        return np.where(exact_zero, 0.0, np.nextafter(factor * values, math.inf))

    bounds = product_up(factor, magnitudes)
    underflow = product_up(underflow_factor, sensitivities)
    added = bounds + underflow
    # The sum may round down where both parts are nonzero: step up once more there.
    return np.where((bounds == 0) | (underflow == 0), added, np.nextafter(added, math.inf))


@functools.lru_cache(maxsize=256)
def _underflow_factor(roundings: int, dtype: str) -> float:
    """(1 + gamma_k) lambda, rounded up."""
    gamma = gamma_of(roundings, dtype)
    assert gamma is not None
    return round_up((1 + gamma) * Fraction(SMALLEST_NORMAL[dtype]))


def bound_at(
    roundings: int, dtype: str, magnitude: float, sensitivity: float, tolerance: float
) -> Bound:
    """The Bound of one entry of :func:`gamma_bounds`: its magnitude and tolerance as given."""
    u = unit_roundoff(dtype)
    gamma = gamma_of(roundings, dtype)
    # For display (the verdicts come from gamma_bounds): float arithmetic suffices.
    underflow = math.inf if gamma is None else _underflow_factor(roundings, dtype) * sensitivity
    return Bound(
        roundings,
        PRECISION_BITS[dtype],
        float(u),
        SMALLEST_NORMAL[dtype],
        math.inf if gamma is None else float(gamma),
        magnitude,
        sensitivity,
        underflow,
        tolerance,
    )
