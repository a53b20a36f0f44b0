"""How far the tape's logistic cross-entropy and its gradient may be from the exact values.

The tape computes z_i = sum_j W_j x_ij + b (a product and an add for one feature, a
MatMul for several) and then, as ``tf.nn.sigmoid_cross_entropy_with_logits`` does,

    l_i = (max(z_i, 0) - z_i y_i) + log1p(exp(-|z_i|)),   L = mean(l_i).

Its gradient goes back through TensorFlow's registered gradients: Mean's (1/n, rounded),
Log1p's (g * reciprocal(1 + x)), Exp's (g * exp(x)), the two SelectV2s, Neg and Mul,
and the four contributions to dL/dz_i are added by one AddN. Exact in real arithmetic,
that is dL/dz_i = (sigma(z_i) - y_i) / n; then dL/dW_j = sum_i x_ij dL/dz_i (Mul and Sum
for one feature, MatMul for several) and dL/db = sum_i dL/dz_i.

What each part costs, for labels y_i in {0, 1}:

- z_i: gamma_{k+1} m_i, m_i = sum_j |W_j x_ij| + |b| (any order of the k products' sum);
- max(z, 0) - z y: exact (y is 0 or 1, so the difference is 0, z or -z);
- exp, log1p and reciprocal: not correctly rounded; each may be off by the ULPs measured
  for it on this build (``derive/data/op_errors.json``), a ULPs are at most 2 a u of
  the value, so the op counts as ceil(2 a) roundings;
- the error in z_i moves l_i by at most |sigma - y| on the way, and sigma(z_i) by at
  most max sigma' <= min(1/4, e^-|z|) on the way;
- the mean: d roundings of the sum and those of the division by n.

Every part is a relative error of one nonnegative term, so the whole is gamma_K M with K the
largest chain of roundings and M the sum of the terms' sizes (Higham's (1 + theta_j)
(1 + theta_k) = 1 + theta_{j+k}). Products of two such errors (second order) are covered
by M's factor 1 + 2^-8 while one term's gamma is at most 2^-10 (beyond that there is no
bound); the sum composes with the terms exactly. Numbers
flushed to zero below lambda add a term of their own. The sizes are computed in float64
and rounded up with a margin of 2^-40 relative, far beyond the C library's errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .check import Bound, gamma_of
from .formats import PRECISION_BITS, SMALLEST_NORMAL, unit_roundoff
from .op_allowance import table
from .roundings import division_roundings

GAMMA_LIMIT = 2.0**-10  # beyond it, second-order terms are no longer small: no bound
SECOND_ORDER = 1 + 2.0**-8  # covers products of two first-order errors below GAMMA_LIMIT
MARGIN = 1 + 2.0**-40  # float64 evaluation of the sizes, rounded up
OPS = ("exp", "log1p", "reciprocal")  # the ops of the tape whose allowance is measured


# Where the tape's ops take their inputs: exp gets -|z|, log1p its result, reciprocal
# 1 + that. The allowances measured on these domains are the ones that apply.
DOMAINS = {"exp": (-math.inf, 0.0), "log1p": (0.0, 1.0), "reciprocal": (1.0, 2.0)}


def op_allowance_ulps(op: str, dtype: str) -> float:
    """The largest error measured for `op` on its domain (DOMAINS), in ULPs of the result.

    float32: the sweep of the domain's every input (the packet path), or failing that
    of all inputs, and the scalar path's sample. float64: the sample of the table (2^64
    inputs cannot be swept; the run-time check measures the tape's own inputs)."""
    row = table()
    if dtype == "float64":
        return float(row["float64"]["ops"][op]["max_ulps"])
    entry = row["ops"][op]
    low, high = DOMAINS[op]
    covering = [
        d for d in entry.get("domains", []) if float(d["low"]) <= low and float(d["high"]) >= high
    ]
    measured = min(covering, key=lambda d: float(d["max_ulps"])) if covering else entry
    swept = float(measured["max_ulps"])
    sampled = float(measured.get("tail_path_sample", {}).get("max_ulps", 0.0))
    return max(swept, sampled) + float(row["reference_margin_ulps"])


def op_roundings(op: str, dtype: str) -> int:
    """An op off by at most a ULPs (as measured) counts as ceil(2 a) roundings: an ULP
    of a normal value v is at most 2 u |v|."""
    return math.ceil(2 * op_allowance_ulps(op, dtype))


@dataclass(frozen=True)
class LogisticRoundings:
    """The chains of roundings the bound counts, by where they happen."""

    logit: int  # z_i: k products summed, then + b
    loss_term: int  # the largest of the logit's and the ops' on one l_i
    adjoint: int  # dL/dz_i: the longest chain of Log1p's and Exp's gradients, then AddN
    division: int  # 1/n (Mean and its gradient)
    depth: int  # d of the mean's sum and of dL/db's
    matmul_depth: int  # of dL/dW's sum inside MatMul (several features: order-free n - 1)


def logistic_roundings(n: int, features: int, dtype: str, depth: int) -> LogisticRoundings:
    exp, log1p, reciprocal = (op_roundings(op, dtype) for op in OPS)
    logit = features + 1
    division = division_roundings(n, dtype)
    # t = fl(fl(up * reciprocal(fl(1 + e))) * e): e twice, the add, the reciprocal, two
    # products, and up = fl(1 / n); then AddN of four contributions (three adds)
    adjoint = 2 * exp + 1 + reciprocal + 2 + division + 3
    return LogisticRoundings(
        logit=logit,
        loss_term=max(logit, exp, log1p, 1),
        adjoint=adjoint,
        division=division,
        depth=depth,
        matmul_depth=n - 1 if features > 1 else depth,
    )


def _sigmoid_above(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return MARGIN / (1 + np.exp(-x))


def _bound(roundings: int, term: int, dtype: str, magnitude: float, flushes: float) -> Bound:
    """gamma_K M (M with its second-order factor) plus the flushes' term. The
    second-order terms come from one sample's term (`term` roundings), not from the sum,
    which composes with it exactly ((1 + theta_j)(1 + theta_k) = 1 + theta_{j+k})."""
    gamma, per_term = gamma_of(roundings, dtype), gamma_of(term, dtype)
    u, smallest = unit_roundoff(dtype), SMALLEST_NORMAL[dtype]
    size = SECOND_ORDER * MARGIN * magnitude
    if gamma is None or per_term is None or per_term > GAMMA_LIMIT:
        inf = math.inf
        return Bound(
            roundings, PRECISION_BITS[dtype], float(u), smallest, inf, size, flushes, inf, inf
        )
    underflow = SECOND_ORDER * flushes * smallest
    value = float(gamma) * size * MARGIN + underflow
    return Bound(
        roundings,
        PRECISION_BITS[dtype],
        float(u),
        smallest,
        float(gamma),
        size,
        flushes,
        underflow,
        value * MARGIN,
    )


@dataclass(frozen=True)
class LogisticBounds:
    """The tolerance of the loss ("L") and of each parameter's gradient, by name."""

    roundings: LogisticRoundings
    bounds: Mapping[str, Bound]


def logistic_bounds(
    dtype: str,
    parameters: Mapping[str, float | Fraction],
    columns: Sequence[np.ndarray],
    y: np.ndarray,
    depth: int,
) -> LogisticBounds:
    """Bounds at these parameter values (W_1 ... W_k or W, then b, as the tape holds
    them) for data `columns` (one per feature) and labels `y` (0 or 1), with the mean's
    sum `depth` roundings deep (derive.tape.order.Order.depth)."""
    names = tuple(parameters)
    weights = np.array([float(parameters[name]) for name in names[:-1]])
    bias = float(parameters[names[-1]])
    x = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    labels = np.asarray(y, dtype=np.float64)
    n, k = x.shape
    counts = logistic_roundings(n, k, dtype, depth)
    gamma_logit = gamma_of(counts.logit, dtype)
    gamma_logit = 1.0 if gamma_logit is None else float(gamma_logit)

    m = (np.abs(x) @ np.abs(weights) + abs(bias)) * MARGIN * MARGIN  # sum |W_j x_ij| + |b|
    z = x @ weights + bias  # float64: off by at most 2^-50 m, inside the margin below
    spread = (gamma_logit * m + 2.0**-40 * m) * MARGIN  # the tape's z and float64's
    nearest = np.maximum(np.abs(z) - spread, 0)  # |z| at least this, on the tape and exactly
    e_above = np.minimum(np.exp(-nearest) * MARGIN, 1.0)  # e^-|z|, and on the tape
    # |sigma(zeta) - y| for zeta within the spread: 1 - sigma(zeta) = sigma(-zeta) for y = 1
    off = np.where(labels == 1, _sigmoid_above(-(z - spread)), _sigmoid_above(z + spread))
    rho = np.minimum(off, 1.0)
    log_above = np.log1p(e_above) * MARGIN
    loss_above = (np.maximum(z + spread, 0) - np.where(labels == 1, z - spread, 0)) + log_above
    loss_above = np.maximum(loss_above * MARGIN, 0)

    bounds: dict[str, Bound] = {}
    loss_size = float(np.sum(rho * m + e_above + log_above + loss_above) / n)
    bounds["L"] = _bound(
        counts.loss_term + counts.depth + counts.division,
        counts.loss_term,
        dtype,
        loss_size,
        k + 3.0,
    )

    # dL/dz_i: |c1| + |c2| + |t| per unit of 1/n, and what the logit's error moves
    maybe_positive = (z + spread >= 0).astype(np.float64)
    mu = maybe_positive + labels + np.minimum(e_above, 0.5)
    slope = np.minimum(0.25, e_above)  # sigma' on the way
    per_sample = (mu + m * slope) / n
    adjoint = max(counts.adjoint, counts.logit)
    for j, name in enumerate(names):
        weight = np.abs(x[:, j]) if j < k else np.ones(n)
        product, sum_depth = (1, counts.matmul_depth) if j < k else (0, counts.depth)
        size = float(np.sum(weight * per_sample))
        flushes = float(np.sum(weight) * (6 + k / 4) + n)
        bounds[name] = _bound(adjoint + product + sum_depth, adjoint, dtype, size, flushes)
    return LogisticBounds(counts, bounds)
