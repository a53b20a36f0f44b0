"""A stand-in for TensorFlow in fast tests: the same float32 operations in NumPy.

It rounds like the tape (every operation in the problem's dtype), so the checks
must pass on it; it does not replace the TensorFlow tests, which use the real tape.
:func:`emulated_tape` runs whatever model and loss the problem names, op by op from
their entries' graphs; :func:`flushing_tape` is written out for the linear model and
the mean squared error (it flushes every intermediate value to zero, as the CPU does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from derive.models.ops import OPS
from derive.problem.problem import Problem
from derive.tape.backward import BackwardTrace
from derive.tape.gradient import TapeResult
from derive.tape.training import Trace

# What TensorFlow's gradient function of each op hands its inputs, from the upstream
# adjoint g and the op's inputs (tensorflow/python/ops/math_grad.py): Mul g * other,
# AddV2 g, Sub g and -g, Square g * (2 a) (``grad * (x * 2)``), Abs g * sign(a),
# SelectV2 g to the branch chosen and 0 to the other (LessEqual: none, its flag is not
# watched). A scalar used by every sample (W, b) receives the sum of its per-sample
# shares (``reduce_sum``).
_GRADIENTS: Mapping[str, Callable[..., tuple[np.ndarray, ...]]] = {
    "multiply": lambda g, a, b: (g * b, g * a),
    "add": lambda g, a, b: (g, g),
    "subtract": lambda g, a, b: (g, -g),
    "square": lambda g, a: (g * (a * a.dtype.type(2)),),
    "abs": lambda g, a: (g * np.sign(a),),
    # MatMul(X, W): X^T g for the kernel, one row W_j each (the columns of X get shares
    # too, never used: X is data)
    "matmul": lambda g, *operands: _matmul_gradient(g, operands),
    "select": lambda g, c, a, b: (
        np.zeros_like(g),
        np.where(c != 0, g, np.zeros_like(g)),
        np.where(c != 0, np.zeros_like(g), g),
    ),
}


def _matmul_gradient(g: np.ndarray, operands: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    half = len(operands) // 2
    columns, weights = operands[:half], operands[half:]
    to_columns = tuple(g * w for w in weights)
    to_weights = tuple(np.atleast_1d(np.sum(g * c, dtype=g.dtype)) for c in columns)
    return (*to_columns, *to_weights)


def emulated_backward(
    problem: Problem, parameters: Mapping[str, float] | None = None
) -> BackwardTrace:
    """The problem's model and loss at its initial values (or `parameters`), node by
    node from their entries' graph, in the dtype: each op's forward formula on NumPy
    values (every operation rounded to the dtype, as on the tape), the mean as np.mean;
    then the adjoints as TensorFlow's gradient functions compute them (the mean's: the
    upstream adjoint 1 divided by n)."""
    dtype = np.dtype(problem.dtype).type
    nodes = (*problem.model_entry.graph, *problem.loss_entry.graph)
    parameters = problem.initial.values if parameters is None else parameters
    values: dict[str, np.ndarray] = {
        **{k: np.atleast_1d(dtype(v)) for k, v in parameters.items()},
        **{k: np.atleast_1d(dtype(v)) for k, v in problem.loss_entry.constants},
        **{
            name: np.asarray(column, dtype=dtype)
            for name, column in zip(problem.model_entry.data, problem.columns, strict=True)
        },
        "y": np.asarray(problem.y, dtype=dtype),
    }
    for node in nodes:
        operands = [values[name] for name in node.inputs]
        op = OPS[node.op]
        if op.reduces:
            values[node.name] = np.atleast_1d(np.mean(operands[0], dtype=dtype))
        else:
            values[node.name] = np.asarray(op.forward(*operands), dtype=dtype)
    # Only what depends on a parameter is watched: data alone (x, y, x^2) has no adjoint,
    # and neither has a comparison's flag.
    watched = set(parameters)
    for node in nodes:
        if watched & set(node.inputs) and OPS[node.op].differentiable:
            watched.add(node.name)
    shares: dict[str, list[np.ndarray]] = {nodes[-1].name: [np.atleast_1d(dtype(1))]}
    adjoints: dict[str, np.ndarray | None] = {}
    for node in reversed(nodes):
        if node.name not in shares:  # not watched: no adjoint flows through it
            continue
        upstream = shares[node.name][0]
        for part in shares[node.name][1:]:
            upstream = upstream + part
        adjoints[node.name] = upstream
        operands = [values[name] for name in node.inputs]
        if OPS[node.op].reduces:
            n = dtype(operands[0].size)
            given = (np.full(operands[0].shape, upstream[0] / n, dtype=dtype),)
        else:
            given = _GRADIENTS[node.op](upstream, *operands)
        for name, share in zip(node.inputs, given, strict=True):
            if name in watched:
                if values[name].size == 1 and share.size > 1:
                    share = np.atleast_1d(np.sum(share, dtype=dtype))
                shares.setdefault(name, []).append(share)
    for name in values:
        if name not in adjoints:
            adjoints[name] = None
            if name in shares:  # a leaf: a parameter
                total = shares[name][0]
                for part in shares[name][1:]:
                    total = total + part
                adjoints[name] = total
    return BackwardTrace(
        values=values,
        adjoints={name: adjoints[name] for name in values},
        recorded_ops=tuple(t for node in nodes for t in OPS[node.op].recorded),
    )


def emulated_tape(problem: Problem) -> TapeResult:
    """``tape.gradient(loss, parameters)`` of the problem's model and loss, emulated."""
    trace = emulated_backward(problem)
    return TapeResult(
        loss=float(trace.values[problem.loss_entry.graph[-1].name][0]),
        gradients={name: float(trace.adjoints[name][0]) for name in problem.initial.values},
        tensorflow_version="emulated",
    )


def emulated_trace(problem: Problem) -> Trace:
    """Full-batch SGD on the emulated tape, as Keras's SGD updates: v - fl(eta g), with
    the learning rate held in float32."""
    dtype = np.dtype(problem.dtype).type
    eta = dtype(np.float32(problem.training.learning_rate))
    names = list(problem.initial.values)
    current = {name: dtype(problem.initial.values[name]) for name in names}
    losses, values, gradients = [], {n: [] for n in names}, {n: [] for n in names}
    first = None
    for _ in range(problem.training.steps + 1):
        step = emulated_backward(problem, current)
        first = first or step
        losses.append(step.values[problem.loss_entry.graph[-1].name][0])
        for name in names:
            values[name].append(current[name])
            gradients[name].append(step.adjoints[name][0])
        current = {name: current[name] - eta * gradients[name][-1] for name in names}
    return Trace(
        parameters={name: np.array(values[name], dtype=dtype) for name in names},
        loss=np.array(losses, dtype=dtype),
        gradients={name: np.array(gradients[name], dtype=dtype) for name in names},
        learning_rate_held=float(np.float32(problem.training.learning_rate)),
        engine="float32 emulation (tests)",
        tensorflow_version="emulated",
        backward=first,
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
