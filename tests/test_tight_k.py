"""The count k is tight: a correct float32 tape can need every rounding k counts.

On data built for it (tests/worst_case_tape.py), the tape -- TensorFlow's operations in
TensorFlow's CPU order of additions, every one rounded to nearest in IEEE float32, nothing
perturbed -- is off by more than gamma_{k-1} M and by at most gamma_k M, for the loss, dL/dW
and dL/db, with k = d + t as the README states it (d the depth of the sum, t the roundings
of one term: 8, 6, 5 for n not a power of two). derive's check passes there, and a check
counting one rounding fewer would fail that correct tape: a mutant ``k - 1`` anywhere in
the count (the depth, the term's roundings, the division) fails this file.

What it proves, and what not:

- k - 1 is wrong: for each quantity, at the n below (one leaf with its tail, several
  leaves of Eigen's tree, two blocks on two threads), a real round-to-nearest float32
  computation exceeds gamma_{k-1} M. M and the exact value are computed here, in
  rational arithmetic; d is counted on the additions derive.tape.summation actually makes.
- It does not show gamma_k itself is reached: round to nearest loses at most u / (1 + u)
  relative, less where a mantissa is not near 1, so the tape stays a fraction of u M
  inside gamma_k M.
- The gradients reach beyond gamma_{k-1} only where fl(1/n) is itself off by nearly u
  with a mantissa near 1 (n a little below a power of two: 4095, 16380, 32760, 131040);
  elsewhere the rounding of 1/n gives away part of a u. dL/db only up to n of a few
  ten thousand: b enters every residual, so every other sample adds at least 2|b| / n
  to M, and b must be about u |W x| for the sum with b to round by u; past n u k ~ 1/2
  that mass outweighs the one rounding. (The count is not loose there; real rounding
  cannot reach it.) For n a power of two derive counts the gradients' product with
  the exact 1/n as a rounding: one more than any tape can use, so k is not tight there.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from derive.exact.check import compare, gamma_bound
from derive.problem.problem import Training, make_problem
from derive.report.build import explain
from derive.tape.summation import reduction_depth
from tests.worst_case_tape import (
    exact_value_and_magnitude,
    gamma,
    worst_case_data,
    worst_case_tape,
)

# t, the roundings of one term, for n not a power of two and below 2^24 (README, "How the
# check works"): r = fl(fl(fl(W x) + b) - y) has 3; the loss r r has 3 + 3 + 1, then the
# division by n 1; g = fl(fl(1/n) 2 r) has 1 + 3 + 1 (dL/db), fl(g x) one more (dL/dW).
TERM_ROUNDINGS = {"L": 3 + 3 + 1 + 1, "W": 1 + 3 + 1 + 1, "b": 1 + 3 + 1}
LABELS = {"L": "L", "W": "dL/dW", "b": "dL/db"}

CASES = [
    ("L", 3, 1),  # the tail alone, summed in sequence
    ("L", 7, 1),
    ("L", 100, 1),  # four accumulators, the halving tree over the lanes, a tail
    ("L", 1000, 1),
    ("L", 4095, 1),
    ("L", 16380, 1),  # two leaves
    ("L", 32760, 1),  # four leaves
    ("L", 200001, 2),  # two blocks on two threads, and the remainder
    ("W", 4095, 1),
    ("W", 16380, 1),
    ("W", 32760, 1),
    ("W", 131040, 2),
    ("b", 4095, 1),
    ("b", 16380, 1),
]


@pytest.mark.parametrize(("quantity", "n", "threads"), CASES)
def test_a_correct_tape_needs_every_rounding_k_counts(quantity, n, threads):
    case = worst_case_data(quantity, n, threads)
    # The depth counted on the additions themselves is the largest over 1..threads (the
    # tape's thread count is not known to be the deepest; derive takes the largest).
    assert case.depth == max(reduction_depth(n, t, "float32") for t in range(1, threads + 1))
    k = case.depth + TERM_ROUNDINGS[quantity]
    value, magnitude = exact_value_and_magnitude(case, quantity)

    problem = make_problem(case.dataset, init=case.init, training=Training(steps=0))
    report = explain(problem, tape=worst_case_tape(threads), backward=False)
    check = next(c for c in report.checks if c.quantity == LABELS[quantity])
    error = abs(Fraction(check.tape) - value)

    # The data are as bad as intended: the tape needs all k roundings, and no more.
    assert error > gamma(k - 1) * magnitude, float(error / (Fraction(1, 2**24) * magnitude))
    assert error <= gamma(k) * magnitude
    # derive's check passes this correct tape, with the same k and M ...
    assert check.ok and check.verdict == "pass", check
    assert report.rounding.roundings[quantity] == k
    assert check.bound.magnitude == pytest.approx(float(magnitude), rel=1e-12)
    # ... where the same check one rounding short would fail it.
    shorter = gamma_bound(k - 1, "float32", magnitude, Fraction(0))
    assert not compare(check.quantity, value, check.tape, shorter, "float32").ok
