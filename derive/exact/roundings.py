"""How many roundings each checked number went through: k of the bound gamma_k M.

k = d + t: d, the depth of the sum over the samples (the most roundings on any path
from one term to the sum), and t, the roundings of one term, counted op by op as the
tape runs them (:func:`derive.symbolic.adjoints.rounding_counts`): a product of a value with k1
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

from ..symbolic.adjoints import derive_adjoints, forward_roundings, graph_of, rounding_counts
from ..tape.order import Order
from ..tape.summation import LEAF_SIZE, PACKET_SIZE


@functools.cache
def _adjoints(model: str, loss: str):  # type: ignore[no-untyped-def]
    from ..models.registry import get_loss, get_model
    from ..symbolic.derivation import build_symbolic

    definitions = get_model(model), get_loss(loss)
    return derive_adjoints(graph_of(*definitions), build_symbolic(*definitions))


@functools.cache
def _counts(model: str, loss: str, n: int, dtype: str, depth: int, xla: bool) -> dict[str, int]:
    backward = _adjoints(model, loss)
    counts = rounding_counts(backward, n, dtype, depth)
    parameters = [v.name for v in backward.graph if v.kind == "parameter"]
    return {
        "L": forward_roundings(backward, n, dtype, depth, reciprocal=xla),
        **{name: counts[name] for name in parameters},
    }


def tape_roundings(
    n: int, dtype: str, order: Order | None, model: str = "linear", loss: str = "mse"
) -> Mapping[str, int]:
    """k for the loss ("L") and each parameter's gradient (by name), over n samples."""
    order = order or Order()
    depth = order.depth(n, dtype)
    return _counts(model, loss, n, dtype, depth, order.mode == "xla")


def term_roundings(
    n: int, dtype: str, mode: str = "eager", model: str = "linear", loss: str = "mse"
) -> Mapping[str, int]:
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
    model: str = "linear",
    loss: str = "mse",
    *,
    float_reference: bool = False,
) -> RoundingFacts:
    from ..symbolic.adjoints import division_roundings

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
