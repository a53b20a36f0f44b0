"""Error-free float64 arithmetic on whole arrays, for references over many samples.

A value is held as a list of float64 arrays whose *exact* sum is the value (an
expansion). Sums concatenate lists; products use Dekker's TwoProduct, which splits
a * b into hi + lo exactly. With no overflow or underflow, every per-sample term is
therefore held exactly. :func:`exact_sum` adds all components exactly (integer
mantissas summed per exponent) and :func:`total` rounds that sum once: the result is
within half a float64 ULP (2^-53 relative) of the exact value, 2^29 times finer than
a float32 ULP.

This is what makes the reference fast for a million samples, where rational
arithmetic would take minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

_SPLITTER = float(2**27 + 1)  # Dekker: splits a float64 into two 26-bit halves
# Products of values up to this size cannot overflow in the splitting step.
SAFE_MAGNITUDE = 2.0**500
SAFE_SMALLEST = 2.0**-400  # nonzero values below this could underflow in products


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLITTER * a
    high = c - (c - a)
    return high, a - high


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a * b = product + error, exactly (Dekker 1971)."""
    product = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    return product, error


@dataclass(frozen=True)
class Expansion:
    """An array of values, each the exact sum of the corresponding entries of `parts`."""

    parts: tuple[np.ndarray, ...]

    @staticmethod
    def of(values: Sequence[float] | np.ndarray | float) -> Expansion:
        return Expansion((np.asarray(values, dtype=np.float64),))

    def _coerce(self, other: object) -> Expansion:
        if isinstance(other, Expansion):
            return other
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return Expansion.of(float(other))
        if isinstance(other, Fraction) and Fraction(float(other)) == other:
            return Expansion.of(float(other))  # a formula's dyadic constant, such as 1/2
        raise TypeError(f"no exact expansion of {other!r}")

    def __add__(self, other: object) -> Expansion:
        other = self._coerce(other)
        return Expansion(self.parts + other.parts)

    __radd__ = __add__

    def __neg__(self) -> Expansion:
        return Expansion(tuple(-part for part in self.parts))

    def __sub__(self, other: object) -> Expansion:
        return self + (-self._coerce(other))

    def __rsub__(self, other: object) -> Expansion:
        return self._coerce(other) + (-self)

    def __mul__(self, other: object) -> Expansion:
        other = self._coerce(other)
        parts: list[np.ndarray] = []
        for a in self.parts:
            for b in other.parts:
                product, error = _two_product(a, b)
                parts.append(product)
                # Products of two float32 values are exact in float64: no error part.
                if np.any(error):
                    parts.append(error)
        return Expansion(tuple(parts))

    __rmul__ = __mul__

    def sign(self) -> Expansion:
        """Each value's sign, exactly (sign(0) = 0): from the float64 sum of the parts
        where its error, below k 2^-53 times the sum of their magnitudes, cannot reach
        0; in rational arithmetic for the few values that close to 0."""
        parts = np.broadcast_arrays(*self.parts)
        rounded = np.sum(parts, axis=0)
        signs = np.sign(rounded)
        unsure = np.abs(rounded) <= len(parts) * 2.0**-52 * np.sum(np.abs(parts), axis=0)
        for index in zip(*np.nonzero(np.atleast_1d(unsure)), strict=True):
            exact = sum((Fraction(float(np.atleast_1d(p)[index])) for p in parts), Fraction(0))
            np.atleast_1d(signs)[index] = (exact > 0) - (exact < 0)
        return Expansion.of(signs)

    def __abs__(self) -> Expansion:  # each part times the value's sign: exact
        signs = self.sign().parts[0]
        return Expansion(tuple(part * signs for part in self.parts))

    def __pow__(self, exponent: int) -> Expansion:
        if not isinstance(exponent, int) or exponent < 1:
            return NotImplemented
        result = self
        for _ in range(exponent - 1):
            result = result * self
        return result


def total(value: Expansion, length: int) -> float:
    """The correctly rounded float64 sum over all samples of the expansion.

    The sum is formed exactly (:func:`exact_sum`); converting the rational to float
    rounds once, correctly (Python divides integers with correct rounding).
    """
    return float(exact_sum(value, length))


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a + b = sum + error, exactly (Knuth)."""
    total_ = a + b
    b_virtual = total_ - a
    error = (a - (total_ - b_virtual)) + (b - b_virtual)
    return total_, error


MAX_PAIR_PARTS = 32  # the error bound of :func:`double_double` is stated up to this many parts


def double_double(value: Expansion) -> tuple[np.ndarray, np.ndarray]:
    """Each entry of the expansion as a pair high + low of float64 arrays.

    The parts are added with TwoSum, their errors summed apart (Sum2 of Ogita, Rump and
    Oishi, 2005, without its final rounding): for m parts, high + low is within
    gamma_(m-1)^2 * sum |parts| of the exact value, below 2^-96 * sum |parts| for
    m <= MAX_PAIR_PARTS.
    """
    if len(value.parts) > MAX_PAIR_PARTS:
        raise ValueError(f"{len(value.parts)} parts: more than {MAX_PAIR_PARTS}")
    high, low = value.parts[0], np.zeros_like(value.parts[0])
    for part in value.parts[1:]:
        high, error = two_sum(high, part)
        low = low + error
    # A value that does not depend on the samples stays one pair of 0-d arrays.
    return two_sum(high, low)


def divided(high: np.ndarray, low: np.ndarray, divisor: int) -> tuple[np.ndarray, np.ndarray]:
    """(high + low) / divisor as a new pair, for a positive integer divisor below 2^53.

    The first quotient's remainder is computed exactly (TwoProduct; the subtraction is
    exact by Sterbenz's lemma), so the pair is within about 2^-104 relative of the
    exact quotient, plus the pair's own error divided by the divisor.
    """
    d = float(divisor)
    quotient = high / d
    product, error = _two_product(quotient, np.float64(d))
    remainder = ((high - product) - error) + low
    return two_sum(quotient, remainder / d)


def is_safe(values: np.ndarray) -> bool:
    """True when products of these values stay exact (no overflow or underflow)."""
    magnitudes = np.abs(values[values != 0])
    return bool(
        magnitudes.size == 0
        or (magnitudes.max() < SAFE_MAGNITUDE and magnitudes.min() > SAFE_SMALLEST)
    )


def products_are_exact(values: np.ndarray, degree: int) -> bool:
    """True when every product of `degree` of these values, held as an expansion, is exact.

    A product of one value by 1.0 is always exact. For more factors, TwoProduct is exact
    while nothing overflows (the splitting step needs headroom, hence 2^900) and no
    error part underflows (each further factor can push the smallest part 2^-53 lower).
    """
    magnitudes = np.abs(values[values != 0])
    if degree <= 1 or magnitudes.size == 0:
        return True
    if not np.isfinite(magnitudes).all():
        return False
    _, largest = np.frexp(magnitudes.max())
    _, smallest = np.frexp(magnitudes.min())
    return bool(degree * largest <= 900 and degree * (smallest - 1) >= -1022 + 53 * (degree + 1))


# np.bincount adds its weights in float64. A weight below 2^27 in magnitude is an
# integer, and up to 2^26 of them sum below 2^53: every partial sum is exact.
_BINCOUNT_CHUNK = 2**26


def exact_sum(value: Expansion, length: int) -> Fraction:
    """The exact sum over all samples of the expansion, as a rational number.

    Every float64 is m * 2^e with an integer m of at most 53 bits. The mantissas are
    split into a high part (27 bits with the sign) and a low part (26 bits), each
    summed per exponent with ``np.bincount`` (exact, see _BINCOUNT_CHUNK), and the few
    per-exponent totals are combined in Python integers.
    """
    totals: dict[int, int] = {}
    constant = Fraction(0)  # parts that are the same for every sample
    for part in value.parts:
        if not np.isfinite(part).all():
            raise ValueError("exact_sum needs finite values")
        if np.ndim(part) == 0:
            constant += Fraction(float(part)) * length
            continue
        values = np.broadcast_to(part, (length,))
        values = values[values != 0]
        for start in range(0, values.size, _BINCOUNT_CHUNK):
            _add_per_exponent(values[start : start + _BINCOUNT_CHUNK], totals)
    if not totals:
        return constant
    # sum of m_e 2^e over the exponents e = 2^lowest * sum of m_e 2^(e - lowest)
    lowest = min(totals)
    mantissas = sum(m << (e - lowest) for e, m in totals.items())
    return constant + Fraction(mantissas) * Fraction(2) ** lowest


def _add_per_exponent(values: np.ndarray, totals: dict[int, int]) -> None:
    fractions, exponents = np.frexp(values)
    mantissas = (fractions * 2.0**53).astype(np.int64)  # exact: |f| < 1, 53 bits
    high, low = mantissas >> 26, mantissas & ((1 << 26) - 1)
    offset = int(exponents.min())
    bins = exponents - offset
    high_sums = np.bincount(bins, weights=high.astype(np.float64))
    low_sums = np.bincount(bins, weights=low.astype(np.float64))
    for index in np.flatnonzero((high_sums != 0) | (low_sums != 0)).tolist():
        key = index + offset - 53
        mantissa = (int(high_sums[index]) << 26) + int(low_sums[index])
        totals[key] = totals.get(key, 0) + mantissa
