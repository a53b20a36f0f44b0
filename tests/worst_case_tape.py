"""A float32 tape pushed to its worst case: data on which TensorFlow's operations, in
TensorFlow's order, lose nearly u at every rounding the count k says they make.

The tape (:func:`worst_case_tape`) is the same computation as TensorFlow's CPU kernels
(r = fl(fl(fl(W x) + b) - y), the loss fl(Sum(fl(r r)) / n), the gradients Sum(g) and
Sum(fl(g x)) with g = fl(fl(1 / n) * 2 r)), every operation rounded to nearest in
NumPy's float32, the sums in the order of :func:`derive.tape.summation.tf_cpu_sum`. Nothing
is perturbed: the data alone make the roundings adversarial (:func:`worst_case_data`):

- one "big" sample sits where the sum's longest path starts (found by running
  derive.tape.summation's own reduction on symbolic terms, :func:`reduction_tree`); its
  residual has no cancellation (W x, b and -y all positive) and every operation on it
  (W x, + b, - y, the square or the products with 1/n and x) rounds the same way by
  nearly u: W, x, b and y are searched among floats a hair past a rounding midpoint,
  with every mantissa close to 1 (where a rounding can reach u relative);
- each addition on that path meets a partial sum of exactly one "small" term, just
  under (or over) half an ULP of the big one, so that the addition drops it (or rounds
  up by nearly half an ULP): d roundings of nearly u each; every other sample is an
  exact zero (x = 0, y = b).

The loss, computed so, is off by about (d + 8) u M for n not a power of two; the
gradients by (d + 6) u M (dL/dW) and (d + 5) u M (dL/db) where fl(1 / n) is itself
off by nearly u (n a little below a power of two: 4095, 32760, 131040).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from derive.exact.roundings import Order
from derive.problem.problem import Dataset
from derive.tape import summation
from derive.tape.gradient import TapeResult

F32 = np.float32
U = Fraction(1, 2**24)
_U = 2.0**-24


# --- The order of additions, as derive.tape.summation performs it, on symbolic terms ----------


class Node:
    """A term (its index) or the sum of two nodes; adding an exact 0 is no addition."""

    __slots__ = ("deep", "depth", "first", "other")

    def __init__(
        self, index: int | None = None, left: Node | None = None, right: Node | None = None
    ):
        if left is None or right is None:
            assert index is not None
            self.depth, self.deep, self.other, self.first = 0, None, None, index
            return
        deep, other = (left, right) if left.depth >= right.depth else (right, left)
        self.depth, self.deep, self.other = deep.depth + 1, deep, other
        self.first = min(left.first, right.first)

    def __add__(self, other: object) -> Node:
        if isinstance(other, (int, np.integer)) and other == 0:
            return self
        assert isinstance(other, Node)
        return Node(left=self, right=other)

    __radd__ = __add__


def reduction_tree(n: int, threads: int, dtype: str = "float32") -> Node:
    """The additions :func:`derive.tape.summation.tf_cpu_sum` makes over n terms, as a tree."""
    packet = summation.PACKET_SIZE[dtype]
    values = np.empty(n, dtype=object)
    values[:] = [Node(i) for i in range(n)]
    blocks = summation.threads_used(n, threads, dtype)
    if blocks == 1:
        return summation._tree(values, 0, n, packet)
    size = n // blocks
    count = n // size
    shards = [summation._tree(values, i * size, size, packet) for i in range(count)]
    total = (
        summation._tree(values, count * size, n - count * size, packet) if count * size < n else 0
    )
    for shard in shards:
        total = total + shard
    return total


def critical_path(root: Node) -> tuple[int, list[int]]:
    """The term at the end of the longest path, and one term of each partial sum it meets."""
    node, others = root, []
    while node.deep is not None:
        assert node.other is not None
        others.append(node.other.first)
        node = node.deep
    return node.first, others


# --- The tape ----------------------------------------------------------------------------


def compute(x: np.ndarray, y: np.ndarray, w: np.float32, b: np.float32, threads: int):
    """TensorFlow's CPU computation in float32: (loss, dL/dW, dL/db)."""
    n = x.size
    residual = (w * x + b) - y
    loss = F32(summation.tf_cpu_sum(residual * residual, threads)) / F32(n)
    upstream = (F32(1) / F32(n)) * (residual * F32(2))  # Mean's gradient, then Square's
    dw = summation.tf_cpu_sum(upstream * x, threads)
    db = summation.tf_cpu_sum(upstream, threads)
    return float(loss), float(dw), float(db)


def worst_case_tape(threads: int):
    """The tape on `threads` intra-op threads, reporting TensorFlow's CPU order."""

    def tape(problem) -> TapeResult:  # type: ignore[no-untyped-def]
        x = np.asarray(problem.x, F32)
        y = np.asarray(problem.y, F32)
        w, b = F32(problem.initial.values["W"]), F32(problem.initial.values["b"])
        loss, dw, db = compute(x, y, w, b, threads)
        return TapeResult(
            loss=loss,
            gradients={"W": dw, "b": db},
            tensorflow_version="emulated worst case",
            order=Order("eager", threads, "2.21.0", "x86_64", confirmed=True),
        )

    return tape


# --- The data ----------------------------------------------------------------------------


def _past(value: float, direction: int) -> np.float32:
    """The float32 next to `value` (a float32) in `direction` (+1 up, -1 down)."""
    return np.nextafter(F32(value), F32(math.inf * direction))


def _half_ulp(value: np.float32) -> Fraction:
    return Fraction(float(np.spacing(abs(value)))) / 2


@dataclass(frozen=True)
class WorstCase:
    dataset: Dataset
    init: dict[str, float]
    threads: int
    depth: int  # of the path the big sample's term takes through the sum
    direction: int  # every rounding on that path: +1 up, -1 down


def _big_sample(quantity: str, n: int, direction: int, depth: int):
    """W, b, x and y of the big sample: every operation on its term rounds in `direction`
    by as near u relative as a search over a few thousand candidates finds, its term's
    mantissa kept near 1 (each of the sum's `depth` roundings reaches u / mantissa)."""
    inverse = F32(1) / F32(n)
    b = _past(_U, direction)  # p + b: a hair short of (or past) half an ULP of p in [1, 2)
    ms = np.arange(0, 4096, 2)
    best: tuple[float, tuple[float, float, float]] | None = None
    for alpha in range(2048 - 40, 2049 + 40):
        w = F32(1 + 2 * alpha * _U)
        betas = np.arange(2000, 6200)
        xs = (1 + 2 * betas * _U).astype(F32)
        products = w * xs
        # W x rounds in `direction` by at least 0.998 u.
        wanted = direction * (products.astype(float) - float(w) * xs.astype(float)) / _U >= 0.998
        for x0 in xs[wanted]:
            p = w * x0
            y0 = -_past_array((2 * ms + 1) * _U, direction)
            r_hat = (p + b) - y0
            exact = float(w) * float(x0) + float(b) - y0.astype(float)
            if quantity == "L":
                term = r_hat * r_hat
                out, reference = (term / F32(n)).astype(float), exact * exact / n
            else:
                term = inverse * (r_hat * F32(2))
                reference = 2 * exact / n
                if quantity == "W":
                    term, reference = term * x0, reference * float(x0)
                out = term.astype(float)
            roundings = direction * (out - reference) / (_U * reference)
            mantissa = np.frexp(term.astype(float))[0] * 2
            score = roundings - depth * (mantissa - 1)
            i = int(np.argmax(score))
            if best is None or score[i] > best[0]:
                best = (float(score[i]), (float(w), float(b), float(x0), float(y0[i])))
    assert best is not None
    return best[1]


def _past_array(values: np.ndarray, direction: int) -> np.ndarray:
    return np.nextafter(values.astype(F32), F32(math.inf * direction))


def _bisect(value, lo: float, hi: float, window: tuple[Fraction, Fraction]) -> float:  # type: ignore[no-untyped-def]
    """A parameter t in [lo, hi] with value(t) in [window): value nondecreasing in t."""
    for _ in range(200):
        middle = (lo + hi) / 2
        found = value(middle)
        if window[0] <= found < window[1]:
            return middle
        lo, hi = (middle, hi) if found < window[0] else (lo, middle)
    raise AssertionError("no small term in the window")


def worst_case_data(quantity: str, n: int, threads: int) -> WorstCase:
    """Data on which the tape's `quantity` ("L", "W" or "b") is as far off as it gets."""
    big, others = critical_path(reduction_tree(n, threads))
    depth = len(others)
    inverse = F32(1) / F32(n)
    # The loss's additions drop the small terms; the gradients round as fl(1/n) does.
    up = quantity != "L" and Fraction(float(inverse)) > Fraction(1, n)
    direction = 1 if up else -1
    w, b, x0, y0 = (F32(v) for v in _big_sample(quantity, n, direction, depth))
    x = np.zeros(n, F32)
    y = np.full(n, b, F32)  # r = fl(fl(0 + b) - b) = 0
    x[big], y[big] = x0, y0
    r0 = (w * x0 + b) - y0
    big_term = {
        "L": r0 * r0,
        "b": inverse * (r0 * F32(2)),
        "W": (inverse * (r0 * F32(2))) * x0,
    }[quantity]
    half = _half_ulp(big_term)
    # Within 2^-13 of half an ULP (each of the d roundings falls short of it by no more).
    slack = Fraction(1, 2**13)
    if direction < 0:
        window = (half * (1 - slack), half)
    else:
        window = (half * (1 + slack / 32), half * (1 + slack))

    def small_term(x_small: np.float32, y_small: np.float32) -> Fraction:
        r = (w * x_small + b) - y_small
        value = {
            "L": r * r,
            "b": inverse * (r * F32(2)),
            "W": (inverse * (r * F32(2))) * x_small,
        }[quantity]
        return Fraction(float(value))

    if quantity == "W":  # x small, y = -1: the term is about 2 x / n
        t = _bisect(lambda t: small_term(F32(t), F32(-1)), 0.0, 2.0**-16, window)
        xs, ys = F32(t), F32(-1)
    else:  # x = 0: the residual is fl(b - y)
        t = _bisect(lambda t: small_term(F32(0), F32(float(b) - t)), 0.0, 2.0**-10, window)
        xs, ys = F32(0), F32(float(b) - t)
    x[others], y[others] = xs, ys
    dataset = Dataset(f"worst-{quantity}-{n}", tuple(x.tolist()), tuple(y.tolist()), "test")
    return WorstCase(dataset, {"W": float(w), "b": float(b)}, threads, depth, direction)


def exact_value_and_magnitude(case: WorstCase, quantity: str) -> tuple[Fraction, Fraction]:
    """The quantity and M, the same sum on absolute values, in rational arithmetic."""
    w, b = Fraction(case.init["W"]), Fraction(case.init["b"])
    n = len(case.dataset.x)
    value, magnitude = Fraction(0), Fraction(0)
    # Only three kinds of sample: count them, then add each kind's share once.
    for (xi, yi), count in Counter(zip(case.dataset.x, case.dataset.y, strict=True)).items():
        x, y = Fraction(xi), Fraction(yi)
        r, size = w * x + b - y, abs(w) * abs(x) + abs(b) + abs(y)
        if quantity == "L":
            value, magnitude = value + count * r * r, magnitude + count * size * size
        elif quantity == "b":
            value, magnitude = value + count * 2 * r, magnitude + count * 2 * size
        else:
            value, magnitude = value + count * 2 * r * x, magnitude + count * 2 * size * abs(x)
    return value / n, magnitude / n


def gamma(k: int) -> Fraction:
    return k * U / (1 - k * U)
