"""The floating-point formats the tape computes in: precision, range and spacing."""

from __future__ import annotations

import math
from fractions import Fraction

PRECISION_BITS = {"float32": 24, "float64": 53}


def unit_roundoff(dtype: str) -> Fraction:
    return Fraction(1, 2 ** PRECISION_BITS[dtype])


# The smallest positive (subnormal) number of each dtype: the spacing of the floats
# near zero. And the smallest normal number lambda: what a flush to zero can lose.
SMALLEST_SUBNORMAL = {"float32": 2.0**-149, "float64": 2.0**-1074}
SMALLEST_NORMAL = {"float32": 2.0**-126, "float64": 2.0**-1022}

# The largest exponent of each dtype: its largest finite number is (2 - 2^(1-p)) 2^emax
# (3.4028235e38 in float32). Rounding to nearest sends every value at or beyond the
# midpoint between it and 2^(emax+1), (2 - 2^-p) 2^emax, to infinity: the midpoint
# itself too, as ties go to the even significand, and 2^(emax+1)'s is even.
MAX_EXPONENT = {"float32": 127, "float64": 1023}


def largest_finite(dtype: str) -> Fraction:
    p = PRECISION_BITS[dtype]
    return Fraction(2 ** (p + 1) - 2, 2**p) * 2 ** MAX_EXPONENT[dtype]


def overflow_threshold(dtype: str) -> Fraction:
    """The smallest magnitude that rounds to infinity in the dtype: (2 - 2^-p) 2^emax."""
    p = PRECISION_BITS[dtype]
    return Fraction(2 ** (p + 1) - 1, 2**p) * 2 ** MAX_EXPONENT[dtype]


def ulp(value: float, dtype: str) -> float:
    """Spacing of the dtype's floats at |value| (near zero: the smallest subnormal)."""
    bits = PRECISION_BITS[dtype]
    if value == 0 or not math.isfinite(value):
        return SMALLEST_SUBNORMAL[dtype]
    _, exponent = math.frexp(abs(value))
    return max(math.ldexp(1.0, exponent - bits), SMALLEST_SUBNORMAL[dtype])
