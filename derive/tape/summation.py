"""The order in which TensorFlow's CPU kernels add n numbers, and the error bound it gives.

``tf.reduce_sum`` and ``tf.reduce_mean`` of a 1-D float32/float64 tensor (the loss, and
the gradients of the scalars W and b, which the tape sums over the samples with a Sum
op) run TensorFlow's ``ReductionOp``: a 1-D input reduced on axis 0 goes to
``ReduceFunctor::Reduce`` (core/kernels/reduction_ops_common.h lines 197-200), which
evaluates Eigen's ``in.reduce(axes, SumReducer)`` on the intra-op ``ThreadPoolDevice``;
the mean divides that sum by ``static_cast<T>(n)`` (core/kernels/reduction_ops.h lines
83-95). Eigen fixes the order (unsupported/Eigen/CXX11/src/Tensor/TensorReduction.h):

- ``FullReducer<..., ThreadPoolDevice>`` (lines 360-405) asks the cost model
  (TensorCostModel.h lines 143-184) for t = min(threads, max(1, int((n c - 10^5) / 10^5
  + 0.9))) blocks, c = 11/64 * sizeof(T) + 10/P cycles a term (10: Eigen's default
  functor cost, Eigen/src/Core/util/XprHelper.h line 206, as SumReducer has none of its
  own), so two blocks from n = 108388 (float32) and 54194 (float64). With t = 1 it
  reduces all n terms at once; otherwise t' = n // (n // t) blocks of n // t terms and
  a remainder, each reduced alone, the blocks then added one by one to the remainder's sum.
- ``InnerMostDimReducer`` (vectorised, tree; lines 255-275): a range of more than
  P * LeafSize terms (LeafSize = 1024 for float and double, lines 224-227) splits at a
  packet boundary, split = P * ceil((first + ceil(count / 2)) / P), each part reduced
  the same way, and the two sums are added.
- A leaf of m <= P * 1024 terms (lines 176-216): four packet accumulators of P lanes take
  the terms 4P at a time (lane l of accumulator a adds terms j + aP + l in sequence);
  then acc0 += acc1, += acc2, += acc3 lane by lane; the full packets left (at most 3) are
  added into acc0; the tail (fewer than P terms) is summed in sequence from 0; the result
  is tail + predux(acc0), predux a halving tree over the lanes (Eigen/src/Core/arch/AVX/
  Reductions.h lines 131-135 and 194-198, SSE/Reductions.h lines 205-216 and 266-272:
  for 8 lanes ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))).

P, the packet size, is that of the vector ISA the wheel was compiled for: the x86-64
``tensorflow-cpu`` wheel is built for AVX (its start-up notice lists AVX2, AVX512F and
FMA as not used), so P = 8 for float32 (Packet8f) and 4 for float64 (Packet4d).

Read from the headers shipped in the ``tensorflow-cpu`` 2.21.0 wheel (its
``tensorflow/include``: TensorFlow's kernels and the Eigen it was built with, version
3.5.0.1-dev). The emulation reproduces that TensorFlow's ``reduce_sum`` and
``reduce_mean`` bit for bit, eagerly and in ``tf.function``, with 1 and 2 intra-op
threads (tests/test_summation.py). Not covered: other builds (AVX-512 or ARM have another
P and lane tree), XLA (``jit_compile=True`` fuses and reorders: the tests show other
bits), and flush-to-zero (NumPy keeps subnormals, TensorFlow flushes them;
:mod:`derive.exact.underflow` bounds that apart). For those the order-free depth is n - 1.

Why the depth bounds the error: in any order of additions, term x_i reaches the result
through d_i roundings, each a factor (1 + delta) with |delta| <= u (an addition to an
exact 0 is exact and not counted), so |fl(sum) - sum| <= sum_i gamma_{d_i} |x_i|
<= gamma_d * sum_i |x_i| with d = max_i d_i (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., Lemma 3.1 and section 4.2). :func:`reduction_depth`
computes d for the order above: in a leaf of m >= 4P terms, with r = m // 4P,
e = (m mod 4P) // P full packets left and a tail of m mod P terms, a lane's first term
goes through r - 1 + 3 + e additions, then log2 P in predux, then 1 with the tail:
at most 264. Each level of the tree adds 1, each block addition 1. So d = 9 (float32)
or 11 (float64) at n = 100, and 163 at 10^4, 257 at 10^6, 259 at 4 * 10^6 (float32 and
float64, 1 or 2 threads), where one long chain has n - 1. The mean's division by n is
one more rounding (two in float32 beyond n = 2^24, where ``static_cast<float>(n)``
rounds n): not part of d.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# Lanes of one SIMD packet in the AVX build of TensorFlow's Eigen: Packet8f, Packet4d.
PACKET_SIZE = {"float32": 8, "float64": 4}
LEAF_SIZE = 1024  # Eigen's LeafSize<T>() for float and double: a leaf has P * 1024 terms

# TensorCostModel<ThreadPoolDevice>: cycles to start a thread, per thread, per byte loaded.
_STARTUP_CYCLES = 100000.0
_PER_THREAD_CYCLES = 100000.0
_LOAD_CYCLES = 1.0 / 64 * 11
_REDUCER_COST = 10.0


def _dtype_name(dtype: np.dtype) -> str:
    name = np.dtype(dtype).name
    if name not in PACKET_SIZE:
        raise ValueError(f"no known reduction order for {name}: only float32 and float64")
    return name


def threads_used(n: int, threads: int, dtype: str) -> int:
    """How many blocks Eigen's FullReducer cuts n terms into on a device of `threads`
    threads: its cost model, in the same double arithmetic."""
    packet = PACKET_SIZE[dtype]
    itemsize = np.dtype(dtype).itemsize
    # The input's cost per term (bytes loaded, no compute) plus the reducer's:
    # TensorOpCost(sizeof(T), 0, 0, true, P) + TensorOpCost(0, 0, Cost, true, P), where
    # Cost = functor_traits<SumReducer<T>>::Cost is Eigen's default 10 (XprHelper.h:
    # SumReducer has reducer_traits, no functor_traits of its own).
    per_term = _LOAD_CYCLES * float(itemsize) + 0.0 + 1.0 * (0.0 / packet + _REDUCER_COST / packet)
    cost = float(n) * per_term
    wanted = (cost - _STARTUP_CYCLES) / _PER_THREAD_CYCLES + 0.9
    return min(threads, max(1, math.trunc(min(wanted, 2.0**31 - 1))))


def _lanes(accumulator: np.ndarray) -> np.generic:
    """Eigen's predux: a halving tree, lane l + half added to lane l."""
    while accumulator.size > 1:
        half = accumulator.size // 2
        accumulator = accumulator[:half] + accumulator[half:]
    return accumulator[0]


def _leaf(values: np.ndarray, packet: int) -> np.generic:
    """InnerMostDimReducer<..., vectorised, no tree> on one leaf."""
    zero = values.dtype.type(0)
    m = values.size
    start = 0
    accumulator = np.zeros(packet, values.dtype)
    if m >= 4 * packet:
        unrolled = m // (4 * packet) * (4 * packet)
        rows = values[:unrolled].reshape(-1, 4 * packet)
        # Each lane of the four accumulators adds its terms in sequence, from 0.
        four = np.cumsum(np.vstack([np.zeros((1, 4 * packet), values.dtype), rows]), axis=0)[-1]
        four = four.reshape(4, packet)
        accumulator = ((four[0] + four[1]) + four[2]) + four[3]
        start = unrolled
    if start <= m - packet:
        full = m // packet * packet
        for row in values[start:full].reshape(-1, packet):
            accumulator = accumulator + row
        start = full
    tail = zero
    for value in values[start:]:
        tail = tail + value
    return tail + _lanes(accumulator)


def _tree(values: np.ndarray, first: int, count: int, packet: int) -> np.generic:
    """InnerMostDimReducer<..., vectorised, tree> on values[first:first + count]."""
    if count > packet * LEAF_SIZE:
        split = packet * -(-(first + -(-count // 2)) // packet)
        left = min(split - first, count)
        total = values.dtype.type(0) + _tree(values, first, left, packet)
        if left < count:
            total = total + _tree(values, split, count - left, packet)
        return total
    return _leaf(values[first : first + count], packet)


def tf_cpu_sum(values: np.ndarray, threads: int) -> float:
    """``tf.reduce_sum`` of a 1-D float32/float64 tensor on the CPU with `threads`
    intra-op threads, in the same order of additions (so the same bits)."""
    values = np.ascontiguousarray(values).reshape(-1)
    dtype = _dtype_name(values.dtype)
    packet = PACKET_SIZE[dtype]
    n = values.size
    zero = values.dtype.type(0)
    if n == 0:
        return float(zero)
    blocks = threads_used(n, threads, dtype)
    # A partial sum beyond the dtype's range becomes inf (and inf - inf nan) on the tape
    # too: the emulation reproduces that silently rather than warning about it.
    with np.errstate(over="ignore", invalid="ignore"):
        if blocks == 1:
            return float(_tree(values, 0, n, packet))
        size = n // blocks
        count = n // size
        shards = [_tree(values, i * size, size, packet) for i in range(count)]
        total = _tree(values, count * size, n - count * size, packet) if count * size < n else zero
        for shard in shards:
            total = total + shard
    return float(total)


def tf_cpu_mean(values: np.ndarray, threads: int) -> float:
    """``tf.reduce_mean``: the sum above divided by n converted to the dtype."""
    values = np.ascontiguousarray(values).reshape(-1)
    kind = values.dtype.type
    return float(kind(tf_cpu_sum(values, threads)) / kind(values.size))


@functools.lru_cache(maxsize=4096)
def _leaf_depth(m: int, packet: int) -> int:
    """Most roundings any term of a leaf of m terms goes through."""
    rows = m // (4 * packet)
    extra = (m - rows * 4 * packet) // packet  # full packets after the unrolled loop
    tail = m - rows * 4 * packet - extra * packet
    if rows:  # first term of a lane: rows - 1 adds, 3 to join the accumulators, `extra`
        lanes: int | None = rows - 1 + 3 + extra
    else:  # acc0 = 0 + first packet (exact), then extra - 1 adds
        lanes = extra - 1 if extra else None
    if lanes is None:
        return max(tail - 1, 0)  # tail + predux(0) is exact
    lanes += int(math.log2(packet))  # the halving tree over the lanes
    if not tail:
        return lanes  # 0 + predux: exact
    return max(lanes, tail - 1) + 1  # tail + predux


@functools.lru_cache(maxsize=4096)
def _tree_depth(offset: int, count: int, packet: int) -> int:
    """Depth of _tree on `count` terms starting at a first index = offset (mod P)."""
    if count > packet * LEAF_SIZE:
        split = packet * -(-(offset + -(-count // 2)) // packet)
        left = min(split - offset, count)  # always < count here: both halves non-empty
        return 1 + max(_tree_depth(offset, left, packet), _tree_depth(0, count - left, packet))
    return _leaf_depth(count, packet)


def _ordered_depth(n: int, threads: int, dtype: str) -> int:
    packet = PACKET_SIZE[dtype]
    blocks = threads_used(n, threads, dtype)
    if blocks == 1:
        return _tree_depth(0, n, packet)
    size = n // blocks
    count = n // size
    remainder = n - count * size
    depths = [
        _tree_depth(i * size % packet, size, packet) + count - i - (i == 0 and not remainder)
        for i in range(count)
    ]
    if remainder:
        depths.append(_tree_depth(count * size % packet, remainder, packet) + count)
    return max(depths)


def reduction_depth(n: int, threads: int | None, dtype: str | None = None) -> int:
    """The most roundings on any path from one of n terms to their sum, so that
    |fl(sum) - sum| <= gamma_depth * sum |terms|.

    `threads`: the intra-op thread count TensorFlow's CPU device had; None for an order
    not known (XLA, another build), which gives the order-free n - 1 of one long chain.
    `dtype` "float32" or "float64"; None gives the larger of the two.
    """
    if n < 1:
        raise ValueError(f"a sum of {n} terms")
    if threads is None:
        return n - 1
    if threads < 1:
        raise ValueError(f"{threads} threads")
    names = PACKET_SIZE if dtype is None else (dtype,)
    return min(n - 1, max(_ordered_depth(n, threads, name) for name in names))
