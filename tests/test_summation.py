"""TensorFlow's CPU summation order: the emulation against the real kernels, bit for bit,
and the depth bound against exact sums on data built to make rounding errors add up."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from derive.tape.summation import (
    LEAF_SIZE,
    PACKET_SIZE,
    reduction_depth,
    tf_cpu_mean,
    tf_cpu_sum,
    threads_used,
)

DTYPES = (np.float32, np.float64)
UNIT_ROUNDOFF = {np.float32: Fraction(1, 2**24), np.float64: Fraction(1, 2**53)}


def _sizes(dtype: type) -> list[int]:
    """Lengths around every boundary of the order: lanes, packets, the leaf, the tree's
    splits, the cost model's switch to two threads; and some in between, up to 10^6."""
    name = np.dtype(dtype).name
    packet = PACKET_SIZE[name]
    leaf = packet * LEAF_SIZE
    two_threads = next(n for n in range(1, 10**6) if threads_used(n, 2, name) == 2)
    sizes = set(range(1, 4 * packet + 3))
    for edge in (leaf, 2 * leaf, 3 * leaf):
        sizes.update(edge + d for d in (-9, -8, -1, 0, 1, 7, 8, 9))
    sizes.update(two_threads + d for d in (-1, 0, 1))
    for power in range(6, 18):
        sizes.update((2**power - 1, 2**power, 2**power + 1))
    rng = np.random.default_rng(20240611)
    sizes.update(int(n) for n in np.exp(rng.uniform(0, math.log(10**6), 10)).astype(int))
    sizes.update((2**20 + 1, 10**6))
    return sorted(n for n in sizes if 1 <= n <= 10**6)


def _data(dtype: type, n: int, seed: int) -> np.ndarray:
    """Signs and magnitudes spread over six decades: every order gives other bits."""
    rng = np.random.default_rng([seed, n])
    return (rng.standard_normal(n) * 10 ** rng.uniform(-3, 3, n)).astype(dtype)


# Runs in a fresh interpreter: the intra-op thread count is fixed when TensorFlow starts.
_TENSORFLOW_SIDE = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
    cases = np.load(sys.argv[2])
    out = {}
    for key in cases.files:
        tensor = tf.constant(cases[key])
        out["sum " + key] = tf.reduce_sum(tensor).numpy()
        out["mean " + key] = tf.reduce_mean(tensor).numpy()
    # The gradients of W and b in reduce_mean(square(W * x + b - y)), three ways.
    def step(W, b, x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(W * x + b - y))
        return (loss, *tape.gradient(loss, [W, b]))
    graph = tf.function(step)
    xla = tf.function(step, jit_compile=True)
    for key in [k for k in cases.files if k.startswith("x ")]:  # only in one of the runs
        x, y = cases[key], cases["y" + key[1:]]
        W = tf.Variable(x.dtype.type(0.3)); b = tf.Variable(x.dtype.type(0.7))
        for name, run in (("eager", step), ("graph", graph), ("xla", xla)):
            values = run(W, b, tf.constant(x), tf.constant(y))
            out[f"{name} {key[2:]}"] = np.array([v.numpy() for v in values])
    np.savez(sys.argv[3], **out)
    """
)


def _run_tensorflow(threads: int, cases: dict[str, np.ndarray], tmp_path: Path) -> dict:
    source, result = tmp_path / f"cases{threads}.npz", tmp_path / f"tape{threads}.npz"
    np.savez(source, **cases)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(
        [sys.executable, "-c", _TENSORFLOW_SIDE, str(threads), str(source), str(result)],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    with np.load(result) as tape:
        return {key: tape[key] for key in tape.files}


def _gradient_replay(W, b, x: np.ndarray, y: np.ndarray, threads: int) -> np.ndarray:
    """The tape's ops in NumPy (math_grad.py of the installed TensorFlow): Mean's gradient
    is Tile then RealDiv by float(n); Square's is grad * (r * 2); the scalars' gradients
    are the only sums: Sum(g) for b, Sum(g * x) for W (BroadcastGradientArgs)."""
    kind = x.dtype.type
    residual = W * x + b - y
    loss = tf_cpu_mean(residual * residual, threads)
    upstream = (kind(1) / kind(x.size)) * (residual * kind(2))
    return np.array(
        [loss, tf_cpu_sum(upstream * x, threads), tf_cpu_sum(upstream, threads)], dtype=kind
    )


@pytest.mark.tensorflow
@pytest.mark.parametrize("threads", [1, 2])
def test_emulation_reproduces_the_tape_bit_for_bit(threads, tmp_path):
    cases: dict[str, np.ndarray] = {}
    for dtype in DTYPES:
        for n in _sizes(dtype):
            cases[f"{np.dtype(dtype).name} {n}"] = _data(dtype, n, seed=threads)
        for n in (7, 8193, 10**6) if threads == 2 else ():
            x = _data(dtype, n, seed=10 + threads)
            cases[f"x {np.dtype(dtype).name} {n}"] = x
            cases[f"y {np.dtype(dtype).name} {n}"] = (2 * x + _data(dtype, n, seed=20)).astype(
                dtype
            )
    tape = _run_tensorflow(threads, cases, tmp_path)

    sums = [key for key in cases if not key.startswith(("x ", "y "))]
    assert len(sums) > 150
    for key in sums:
        values = cases[key]
        kind = values.dtype.type
        assert tape["sum " + key] == kind(tf_cpu_sum(values, threads)), key
        assert tape["mean " + key] == kind(tf_cpu_mean(values, threads)), key
        # Same bits, including the sign of a zero.
        assert np.signbit(tape["sum " + key]) == np.signbit(kind(tf_cpu_sum(values, threads)))

    xla_differs = 0
    for key in [k for k in cases if k.startswith("x ")]:
        x, y = cases[key], cases["y" + key[1:]]
        kind = x.dtype.type
        replay = _gradient_replay(kind(0.3), kind(0.7), x, y, threads)
        np.testing.assert_array_equal(tape["eager " + key[2:]], replay, err_msg=key)
        np.testing.assert_array_equal(tape["graph " + key[2:]], replay, err_msg=key)
        xla_differs += not np.array_equal(tape["xla " + key[2:]], replay)
    # XLA fuses and reorders the sums: the emulation does not apply there.
    assert xla_differs >= 2 or threads == 1


def _exact_sum(values: np.ndarray) -> Fraction:
    """The exact sum, from integer mantissas grouped by exponent."""
    mantissas, exponents = np.frexp(values.astype(np.float64))
    scaled = (mantissas * 2.0**53).astype(np.int64)  # exact: 53-bit integers
    high, low = scaled >> 26, scaled & (2**26 - 1)  # parts whose sums fit in int64
    total = Fraction(0)
    for exponent in np.unique(exponents):
        chosen = exponents == exponent
        whole = int(high[chosen].sum()) * 2**26 + int(low[chosen].sum())
        total += Fraction(whole) * Fraction(2) ** (int(exponent) - 53)
    return total


def _gamma(k: int, dtype: type) -> Fraction:
    u = UNIT_ROUNDOFF[dtype]
    return k * u / (1 - k * u)


def _check_bound(values: np.ndarray, threads: int) -> Fraction:
    """|tf_cpu_sum - exact| <= gamma_depth * sum |x|; returns the error in units u M."""
    dtype = values.dtype.type
    n = values.size
    depth = reduction_depth(n, threads, np.dtype(dtype).name)
    error = abs(Fraction(tf_cpu_sum(values, threads)) - _exact_sum(values))
    magnitude = _exact_sum(np.abs(values))
    assert error <= _gamma(depth, dtype) * magnitude, (n, depth)
    return error / (UNIT_ROUNDOFF[dtype] * magnitude)


def _rounding_up_lanes(dtype: type, n: int) -> np.ndarray:
    """1 at the head of every lane of each leaf's four accumulators, and after it terms of
    just over half an ULP of 1: each add in a lane rounds up by almost u, ~255 times in a
    row -- the longest chain of the order, made to err in one direction all the way."""
    packet = PACKET_SIZE[np.dtype(dtype).name]
    leaf = packet * LEAF_SIZE
    u = float(UNIT_ROUNDOFF[dtype])
    values = np.full(n, u * (1 + 2.0**-10), dtype=dtype)
    for start in range(0, n, leaf):
        values[start : start + 4 * packet] = 1
    return values


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_depth_bounds_the_error_where_roundings_add_up(dtype, threads):
    packet = PACKET_SIZE[np.dtype(dtype).name]
    for n in (packet * LEAF_SIZE, 2**17, 2**20):  # leaves of exactly P * 1024 terms
        used = _check_bound(_rounding_up_lanes(dtype, n), threads)
        depth = reduction_depth(n, threads, np.dtype(dtype).name)
        # The bound is nearly attained: the depth counts no phantom roundings.
        assert used > Fraction(depth - 15), (n, float(used), depth)
        assert depth < 270


@pytest.mark.parametrize("dtype", DTYPES)
def test_depth_bounds_the_error_on_other_data(dtype):
    rng = np.random.default_rng(7)
    for n in (1, 2, 9, 33, 100, 4097, 8193, 54194, 108388, 262145, 10**6):
        for values in (
            _data(dtype, n, seed=3),
            np.abs(_data(dtype, n, seed=4)),  # one sign: the errors cannot cancel
            (1 + rng.uniform(0, 2.0**-20, n)).astype(dtype),  # partial sums grow steadily
        ):
            for threads in (1, 2):
                _check_bound(values, threads)


def test_depth_is_small_where_the_chain_bound_is_useless():
    # The values the report quotes: float32 and float64 alike, 1 or 2 threads.
    expected = {10**2: 11, 10**4: 163, 10**6: 257, 4 * 10**6: 259}
    for n, depth in expected.items():
        for threads in (1, 2):
            assert reduction_depth(n, threads) == depth, n
    assert reduction_depth(10**2, 1, "float32") == 9
    # An unknown order: one long chain.
    assert reduction_depth(10**6, None) == 10**6 - 1
    # Beyond where gamma_{n-1} exists in float32 (n - 1 >= 2^24), the depth stays small.
    assert reduction_depth(2**25, 2) < 300
    assert all(reduction_depth(n, 2) <= n - 1 for n in range(1, 200))


def test_cost_model_switches_to_two_threads_where_tensorflow_does():
    # Found on the tape: the two-block order from n = 108388 (float32), 54194 (float64).
    assert threads_used(108387, 2, "float32") == 1
    assert threads_used(108388, 2, "float32") == 2
    assert threads_used(54193, 2, "float64") == 1
    assert threads_used(54194, 2, "float64") == 2
    assert threads_used(10**9, 2, "float32") == 2
    assert threads_used(10**9, 1, "float32") == 1


def test_other_dtypes_are_refused():
    with pytest.raises(ValueError, match="float16"):
        tf_cpu_sum(np.ones(3, np.float16), 1)


def test_a_sum_beyond_float32_is_inf_without_a_numpy_warning() -> None:
    """The tape's sum overflows to inf silently; so does its emulation (no RuntimeWarning,
    which pytest's filterwarnings=error would turn into a failure)."""
    values = np.full(1000, 3.0e38, dtype=np.float32)
    assert math.isinf(tf_cpu_sum(values, threads=1))
    assert math.isinf(tf_cpu_sum(values, threads=2))
