"""The logistic cross-entropy checked at every training step: references in float64,
with their own error stated and added to the tape's bound.

Ball arithmetic (derive.exact.certified) costs microseconds a sample; a thousand steps
over many samples need NumPy. In float64 the data and the parameters (float32 on the
tape) multiply exactly; what rounds is the sums, exp and log1p. NumPy's float64 exp and
log1p (the C library's) are allowed LIBM_ULPS each, far beyond their measured error
(below one ULP), and every sum the order-free gamma_{n-1}: the reference lies within

    (1 + gamma_{n-1}) (1/n) sum_i e_i + gamma_{n-1} (1/n) sum_i |t_i|

of the exact value, where t_i is sample i's term and e_i bounds its error. In float32
that is some 10^-9 of the tape's own bound; it is added to it all the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from .check import Bound, Check, compare, gamma_of
from .logistic_bound import MARGIN, logistic_bounds

LIBM_ULPS = 1024  # allowed for NumPy's float64 exp and log1p (measured: under one ULP)
U64 = 2.0**-53


@dataclass(frozen=True)
class Float64References:
    """The loss ("L") and each gradient by parameter name, and how far each may be
    from the exact value."""

    values: Mapping[str, float]
    errors: Mapping[str, float]


def _gamma64(k: int) -> float:
    found = gamma_of(k, "float64")
    return 1.0 if found is None else float(found)


def float64_references(
    parameters: Mapping[str, float | Fraction], columns: Sequence[np.ndarray], y: np.ndarray
) -> Float64References:
    """L = mean(max(z, 0) - z y + log1p(e^-|z|)) and dL/dtheta = mean((sigma(z) - y) dz/dtheta)
    at these parameter values (W_1 ... W_k or W, then b), with their errors."""
    names = tuple(parameters)
    weights = np.array([float(parameters[name]) for name in names[:-1]])
    bias = float(parameters[names[-1]])
    x = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    labels = np.asarray(y, dtype=np.float64)
    n, k = x.shape
    z = x @ weights + bias  # exact products, k additions
    size = np.abs(x) @ np.abs(weights) + abs(bias)
    z_error = _gamma64(k + 1) * size * MARGIN
    e = np.exp(-np.abs(z))
    # sigma(z) - y without cancellation: -sigma(-z) for y = 1, sigma(z) for y = 0
    t = np.where(labels == 1, -z, z)
    offset = np.where(t >= 0, 1 / (1 + e), e / (1 + e))
    signed = np.where(labels == 1, -offset, offset)
    losses = np.maximum(z, 0) - z * labels + np.log1p(e)
    op = 2 * LIBM_ULPS * U64  # one op's relative error, allowed
    # each term: z's error moves l by at most 1 and sigma by at most 1/4; exp twice, log1p,
    # the add, the division (and their roundings) on top
    loss_errors = (z_error + 4 * op * (losses + e)) * MARGIN
    gradient_errors = (z_error / 4 + 4 * op * (np.abs(signed) + e)) * MARGIN
    chain = _gamma64(n - 1)  # any order of the sum

    def mean(terms: np.ndarray, errors: np.ndarray) -> tuple[float, float]:
        value = float(np.sum(terms)) / n
        error = (1 + chain) * float(np.sum(errors)) / n + chain * float(np.sum(np.abs(terms))) / n
        return value, (error + U64 * abs(value)) * MARGIN * MARGIN  # the division by n

    values, errors = {}, {}
    values["L"], errors["L"] = mean(losses, loss_errors)
    for j, name in enumerate(names):
        weight = x[:, j] if j < k else np.ones(n)
        values[name], errors[name] = mean(signed * weight, gradient_errors * np.abs(weight))
    return Float64References(values, errors)


def check_step(
    dtype: str,
    parameters: Mapping[str, float | Fraction],
    columns: Sequence[np.ndarray],
    y: np.ndarray,
    depth: int,
    tape: Mapping[str, float],
) -> list[Check]:
    """The tape's loss ("L") and gradients at one step against the float64 references,
    each within the tape's bound plus the reference's own error."""
    references = float64_references(parameters, columns, y)
    bounds = logistic_bounds(dtype, parameters, columns, y, depth).bounds
    checks = []
    for key in ("L", *parameters):
        bound: Bound = bounds[key]
        widened = replace(bound, value=(bound.value + references.errors[key]) * MARGIN)
        quantity = "L" if key == "L" else f"dL/d{key}"
        reference = Fraction(references.values[key])
        checks.append(compare(quantity, reference, float(tape[key]), widened, dtype))
    return checks
