"""A stand-in for TensorFlow in fast tests: the same float32 operations in NumPy.

It rounds like the tape (every operation in the problem's dtype), so the checks
must pass on it; it does not replace the TensorFlow tests, which use the real tape.
"""

from __future__ import annotations

import numpy as np

from derive.problem.problem import Problem
from derive.tape.gradient import TapeResult


def emulated_tape(problem: Problem) -> TapeResult:
    dtype = np.dtype(problem.dtype)
    x = np.asarray(problem.x, dtype=dtype)
    y = np.asarray(problem.y, dtype=dtype)
    w = dtype.type(problem.initial.values["W"])
    b = dtype.type(problem.initial.values["b"])
    residual = (w * x + b) - y
    loss = np.mean(np.square(residual), dtype=dtype)
    upstream = dtype.type(2) * residual * (dtype.type(1) / dtype.type(problem.n))
    return TapeResult(
        loss=float(loss),
        gradients={
            "W": float(np.sum(upstream * x, dtype=dtype)),
            "b": float(np.sum(upstream, dtype=dtype)),
        },
        tensorflow_version="emulated",
    )


def flushing_tape(problem: Problem) -> TapeResult:
    """The tape's operations with flush-to-zero as on the CPU: every input and every
    result below the dtype's smallest normal number becomes 0. Element-wise operations
    run in TensorFlow's order; the sums add left to right, where TensorFlow's reductions
    may group the terms otherwise (the bound holds for any order)."""
    dtype = np.dtype(problem.dtype)
    tiny = np.finfo(dtype).tiny

    def flushed(value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, dtype=dtype)
        return np.where(np.abs(value) < tiny, dtype.type(0), value)

    def summed(values: np.ndarray) -> np.ndarray:
        total = dtype.type(0)
        for value in values:
            total = flushed(total + value)
        return total

    x = flushed(np.asarray(problem.x, dtype=dtype))
    y = flushed(np.asarray(problem.y, dtype=dtype))
    w = flushed(dtype.type(problem.initial.values["W"]))
    b = flushed(dtype.type(problem.initial.values["b"]))
    n = dtype.type(problem.n)
    residual = flushed(flushed(flushed(w * x) + b) - y)
    loss = flushed(summed(flushed(np.square(residual))) / n)
    # Backward: the mean's 1/n, times the square's local derivative 2 r; then W x_i.
    upstream = flushed(flushed(dtype.type(1) / n) * flushed(residual * dtype.type(2)))
    return TapeResult(
        loss=float(loss),
        gradients={
            "W": float(summed(flushed(upstream * x))),
            "b": float(summed(upstream)),
        },
        tensorflow_version="emulated, flushing to zero",
    )
