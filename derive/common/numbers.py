"""How numbers are written in formulas and tables."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

SIGNIFICANT_DIGITS = 10


def as_float(value: Fraction | float) -> float:
    """The nearest float64, or an infinity of the value's sign beyond float64's range
    (exact values of data near 1e200 can be; their checks then say overflow)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def round_up(value: Fraction) -> float:
    """The smallest float64 not below value (inf beyond float64's range)."""
    rounded = as_float(value)
    if math.isinf(rounded):
        return rounded
    return rounded if Fraction(rounded) >= value else math.nextafter(rounded, math.inf)


def plain(
    value: float | Fraction, digits: int = SIGNIFICANT_DIGITS, keep_zeros: bool = False
) -> str:
    """A number with `digits` significant digits, no exponent for everyday magnitudes.

    `keep_zeros`: every digit written, trailing zeros too (0.013288900 beside
    0.013289016), for columns and for values said to have `digits` digits."""
    try:
        value = float(value)
    except OverflowError:  # an exact value beyond float64 (float64 data near its limit)
        return _beyond_float64(value, digits)
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    text = f"{value:#.{digits}g}" if keep_zeros else f"{value:.{digits}g}"
    if "e" in text:
        return text
    if "." in text:
        text = text.rstrip(".") if keep_zeros else text.rstrip("0").rstrip(".")
    return text


def _beyond_float64(value: float | Fraction, digits: int) -> str:
    """A Fraction too large for a float, written with `digits` significant digits."""
    exact = Fraction(value)
    with localcontext() as context:
        context.prec = digits
        quotient = Decimal(exact.numerator) / Decimal(exact.denominator)
    mantissa, exponent = f"{quotient:.{digits - 1}e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent):+03d}"


def key_number(value: float | Fraction, digits: int = SIGNIFICANT_DIGITS) -> str:
    """`digits` significant digits with the trailing zeros kept (0.086 at 6 digits is
    0.0860000): a key shows every digit it states, and so at least the decimals a sheet
    asks for."""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return plain(value, digits)
    return f"{value:#.{digits}g}".rstrip(".")


def latex_number(
    value: float | Fraction, digits: int = SIGNIFICANT_DIGITS, keep_zeros: bool = False
) -> str:
    """The number as LaTeX: 1.5e-07 becomes 1.5 \\times 10^{-7}."""
    text = plain(value, digits, keep_zeros)
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = rf"{mantissa} \times 10^{{{int(exponent)}}}"
    # Braces make the minus sign a sign, not a binary operator with spacing around it.
    return "{" + text + "}" if text.startswith("-") else text


def signed_latex(value: float | Fraction, digits: int = SIGNIFICANT_DIGITS) -> str:
    """latex_number in parentheses when negative, for a number inside a product or sum."""
    text = latex_number(value, digits)
    return rf"\left({text}\right)" if value < 0 else text


def prose_number(value: float | Fraction, digits: int = SIGNIFICANT_DIGITS) -> str:
    """The number as HTML for running text: 3.5e+03 becomes 3.5 \u00d7 10<sup>3</sup>.

    Only digits, signs and the tags come out, so the result is safe as markup."""
    text = plain(value, digits)
    if "e" in text and math.isfinite(float(value)):
        mantissa, exponent = text.split("e")
        text = f"{mantissa}\u00a0\u00d7\u00a010<sup>{int(exponent)}</sup>".replace("-", "\u2212")
    return text


def exact_float(value: float) -> str:
    """Enough digits to see what a float really is (3.3 in float32 is 3.2999999523162842)."""
    return repr(float(value))
