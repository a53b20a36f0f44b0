"""How many roundings each checked number went through: k of the bound gamma_k M.

k = d + t: d, the depth of the sum over the samples (the most roundings on any path
from one term to the sum), and t, the roundings of one term, counted op by op as the
tape runs them (:func:`derive.exact.roundings.rounding_counts`): a product of a value with k1
roundings and one with k2 has k1 + k2 + 1, a sum of values adds one to the larger
count, multiplying by a power of two adds none. For the linear model and the mean
squared error, with a rounded 1/n (n not a power of two):

    r_i = fl(fl(fl(W x_i) + b) - y_i)           3
    L     = fl(sum fl(r_i r_i)) / n             d + (3 + 3 + 1) + 1 = d + 8
    g_i   = fl(fl(1/n) * fl(2 r_i))             1 + 3 + 1 = 5 (Mean's gradient is Tile,
                                                then RealDiv by n; Square's is g * 2 r)
    dL/db = Sum(g_i)                            d + 5
    dL/dW = Sum(fl(g_i x_i))                    d + 6 (Mul's gradient for W)

The division by n is one rounding, two in float32 beyond n = 2^24, where n itself is
rounded, and none for a power of two.

d is the depth of TensorFlow's CPU reduction (:func:`derive.tape.summation.reduction_depth`)
when that order is known: the tape ran TensorFlow's CPU kernels (eagerly or in a
``tf.function``), of the release and build the order was read from (tensorflow-cpu
2.21, x86-64), and a sum made at run time matched the emulation bit for bit. As the
device's intra-op thread count T decides how the terms are cut into blocks, d is the
largest depth over 1..T threads. Otherwise d = n - 1: the order-free bound of one long
chain, which any order of additions satisfies. Under XLA the order is not known and,
besides, the mean's division may become a product with a rounded 1/n: one more rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

from ..models.registry import Loss, Model
from ..symbolic.adjoints import SymbolicBackward, derive_adjoints, graph_of, op_vertices
from ..symbolic.derivation import N, build_symbolic
from ..tape.order import Order
from ..tape.summation import LEAF_SIZE, PACKET_SIZE


# Keyed by the entries themselves, not their names: two entries registered under one
# name one after the other (as a test may do) never share a count.
@functools.cache
def _adjoints(model: Model, loss: Loss) -> SymbolicBackward:
    return derive_adjoints(graph_of(model, loss), build_symbolic(model, loss))


@functools.cache
def _counts(model: Model, loss: Loss, n: int, dtype: str, depth: int, xla: bool) -> dict[str, int]:
    backward = _adjoints(model, loss)
    counts = rounding_counts(backward, n, dtype, depth)
    parameters = [v.name for v in backward.graph if v.kind == "parameter"]
    return {
        "L": forward_roundings(backward, n, dtype, depth, reciprocal=xla),
        **{name: counts[name] for name in parameters},
    }


@functools.cache
def node_roundings(model: Model, loss: Loss, node: str, dtype: str) -> int:
    """t of one per-sample node's forward value (before the mean: no sum, no n)."""
    backward = _adjoints(model, loss)
    forward = _forward_counts(backward, 1, dtype, 0, 0)
    return forward[backward.symbols[node]]


def tape_roundings(
    n: int, dtype: str, order: Order | None, model: Model, loss: Loss
) -> Mapping[str, int]:
    """k for the loss ("L") and each parameter's gradient (by name), over n samples of
    the model and loss entries (a Problem's: ``problem.model_entry``, ``loss_entry``)."""
    order = order or Order()
    depth = order.depth(n, dtype)
    return _counts(model, loss, n, dtype, depth, order.mode == "xla")


def term_roundings(n: int, dtype: str, mode: str, model: Model, loss: Loss) -> Mapping[str, int]:
    """t, the roundings of one term (k without the sum's depth)."""
    return _counts(model, loss, n, dtype, 0, mode == "xla")


@dataclass(frozen=True)
class RoundingFacts:
    """What section 6 says about k: which bound, its depth, each quantity's count."""

    order: Order
    reason: str  # Order.reason
    n: int
    dtype: str
    depth: int  # d of the bound used
    order_free_depth: int  # n - 1
    terms: Mapping[str, int]  # t per quantity ("L", then each parameter)
    roundings: Mapping[str, int]  # k = d + t
    division: int  # roundings of the tape's division by n (XLA's 1/n product: L's t + 1)
    float_reference: bool = False  # references rounded once to float64: + 2^-52 M

    @property
    def known(self) -> bool:
        return self.reason == "cpu-order"

    @property
    def lanes(self) -> int:
        """Lanes of one SIMD packet in the order read (8 for float32, 4 for float64)."""
        return PACKET_SIZE[self.dtype]

    @property
    def leaf(self) -> int:
        """Terms of one leaf of Eigen's reduction tree."""
        return PACKET_SIZE[self.dtype] * LEAF_SIZE


def rounding_facts(
    n: int,
    dtype: str,
    order: Order | None,
    model: Model,
    loss: Loss,
    *,
    float_reference: bool = False,
) -> RoundingFacts:

    order = order or Order()
    depth = order.depth(n, dtype)
    terms = term_roundings(n, dtype, order.mode, model, loss)
    return RoundingFacts(
        order=order,
        reason=order.reason,
        n=n,
        dtype=dtype,
        depth=depth,
        order_free_depth=n - 1,
        terms=dict(terms),
        roundings={key: depth + value for key, value in terms.items()},
        division=division_roundings(n, dtype),
        float_reference=float_reference,
    )


def _representable(value: sp.Number, dtype: str) -> bool:
    exact = Fraction(int(value.p), int(value.q)) if value.is_Rational else None
    return exact is not None and Fraction(float(np.asarray(float(exact), dtype=dtype))) == exact


def power_of_two(value: sp.Expr) -> bool:
    """Multiplying by +-2^j is exact in binary floating point (barring under/overflow)."""
    if not value.is_Rational or value == 0:
        return False
    p, q = abs(int(value.p)), int(value.q)
    return (p & (p - 1)) == 0 and (q & (q - 1)) == 0


def roundings(expr: sp.Expr, known: Mapping[sp.Basic, int], dtype: str) -> int:
    """Roundings on the longest chain when expr is computed in floating point.

    A sum of m terms adds m - 1 to the largest count among its terms; a product adds
    the counts of its factors and one per multiplication, except by a power of two
    (exact); a constant the dtype cannot hold is itself one rounding.
    """
    if expr in known:
        return known[expr]
    if isinstance(expr, sp.logic.boolalg.Boolean) and not isinstance(expr, sp.Symbol):
        return 0  # a comparison's flag (LessEqual): exact
    if isinstance(expr, sp.Piecewise):  # SelectV2 picks one branch, computed as written
        return max(roundings(value, known, dtype) for value, _ in expr.args)
    if expr.is_Number:
        return 0 if _representable(expr, dtype) else 1
    if isinstance(expr, sp.Add):
        return max(roundings(a, known, dtype) for a in expr.args) + len(expr.args) - 1
    if isinstance(expr, sp.Mul):
        factors = [a for a in expr.args if not power_of_two(a)]
        return sum(roundings(a, known, dtype) for a in factors) + max(len(factors) - 1, 0)
    if isinstance(expr, sp.Abs):  # exact: only the sign bit changes
        return roundings(expr.args[0], known, dtype)
    if isinstance(expr, sp.sign):  # -1, 0 or 1: exact (the side of 0 is exact/kinks.py's)
        return 0
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        power = int(expr.exp)
        return power * roundings(expr.base, known, dtype) + power - 1
    raise NotImplementedError(f"no rounding count for {expr!r}")


def exact_factor(local: sp.Expr) -> bool:
    """A local derivative that multiplies exactly: a power of two, or a choice between
    such numbers and 0 (SelectV2's gradient passes the upstream adjoint or a zero)."""
    if isinstance(local, sp.Piecewise):
        return all(exact_factor(value) or value == 0 for value, _ in local.args)
    return bool(local.is_Number and power_of_two(local))


def division_roundings(n: int, dtype: str, reciprocal: bool = False) -> int:
    """Roundings of dividing by n as the tape does: by ``static_cast<T>(n)`` (the mean)
    or by the constant n (its gradient, ``truediv(Tile(1), n)``). None for a power of two
    (exact), one for the quotient, one more where the dtype cannot hold n itself (float32
    beyond 2^24). `reciprocal`: multiplied by a rounded 1/n instead (as XLA may do), one
    more again."""
    if power_of_two(sp.Integer(n)):
        return 0
    quotient = 1 if _representable(sp.Integer(n), dtype) else 2
    return quotient + (1 if reciprocal else 0)


def _forward_counts(
    backward: SymbolicBackward, n: int, dtype: str, depth: int, division: int
) -> dict[sp.Basic, int]:
    """Roundings of each node's forward value: a leaf none, an op what its formula gives
    from its inputs' counts, the mean `depth` (the sum) + `division` more."""
    forward: dict[sp.Basic, int] = {}
    kinds = {v.name: v.kind for v in backward.graph}
    for vertex in backward.graph:
        symbol = backward.symbols[vertex.name]
        if vertex.op is None:
            forward[symbol] = 0
        elif vertex.op.reduces:
            (term,) = vertex.inputs
            forward[symbol] = forward[backward.symbols[term]] + depth + division
        else:
            dummies = sp.symbols(f"a0:{len(vertex.inputs)}")
            known = {
                d: forward[backward.symbols[name]]
                for d, name in zip(dummies, vertex.inputs, strict=True)
            }
            # A loss's constant enters as its value (its leaf symbol is that number), so
            # that a product with 1/2 counts as exact
            operands = [
                backward.symbols[name] if kinds[name] == "constant" else d
                for d, name in zip(dummies, vertex.inputs, strict=True)
            ]
            forward[symbol] = roundings(vertex.op.forward(*operands), known, dtype)
    return forward


def forward_roundings(
    backward: SymbolicBackward,
    n: int,
    dtype: str,
    depth: int | None = None,
    *,
    reciprocal: bool = False,
) -> int:
    """k of the loss (the graph's output) as the tape computes it: its terms' roundings,
    the sum's `depth` (None: n - 1, one long chain) and the division by n."""
    depth = n - 1 if depth is None else depth
    division = division_roundings(n, dtype, reciprocal)
    forward = _forward_counts(backward, n, dtype, depth, division)
    return forward[backward.symbols[backward.output]]


def rounding_counts(
    backward: SymbolicBackward, n: int, dtype: str, depth: int | None = None
) -> dict[str, int]:
    """k for each node's adjoint as TensorFlow computes it.

    Forward values carry their own roundings (a leaf none). Going backward, dL/dL = 1
    is exact; an op passes on upstream * local derivative: nothing is rounded when the
    local derivative is +-1, the mean's gradient divides by n (:func:`division_roundings`),
    otherwise the roundings of the local derivative (it is made of forward values)
    plus one for the product: a product of values with k1 and k2 roundings has
    k1 + k2 + 1. A scalar used by every sample adds the depth of the sum over the
    samples: `depth` (TensorFlow's order, :mod:`derive.tape.summation`), or n - 1 (None;
    and always for a sum inside MatMul).
    """
    depth = n - 1 if depth is None else depth
    division = division_roundings(n, dtype)
    forward = _forward_counts(backward, n, dtype, depth, division)
    counts: dict[str, list[int]] = {backward.output: [0]}
    for consumer in reversed(op_vertices(backward.graph)):
        assert consumer.op is not None
        if not consumer.watched:
            continue  # computed from the data alone: no adjoint flows through it
        upstream = max(counts[consumer.name]) + len(counts[consumer.name]) - 1
        for name in consumer.inputs:
            if (consumer.name, name) not in backward.locals:
                continue
            local = backward.locals[(consumer.name, name)].subs(N, n)
            if consumer.op.reduces:
                step = division
            elif exact_factor(local):
                step = 0
            else:
                step = roundings(local, forward, dtype) + 1
            if name in backward.broadcast:
                # MatMul sums X^T g inside its kernel (Eigen's GEMM, blocked in an order
                # not read here): the order-free n - 1; the rest is TensorFlow's Sum
                step += n - 1 if consumer.op.name == "matmul" else depth
            counts.setdefault(name, []).append(upstream + step)
    return {name: max(ks) + len(ks) - 1 for name, ks in counts.items()}
