"""A stand-in for TensorFlow in fast tests: the same float32 operations in NumPy.

It rounds like the tape (every operation in the problem's dtype), so the checks
must pass on it; it does not replace the TensorFlow tests, which use the real tape.
"""

from __future__ import annotations

import numpy as np

from derive.problem import Problem
from derive.tape import TapeResult


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
