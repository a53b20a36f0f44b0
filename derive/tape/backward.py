"""The backward pass, node by node: the script's ops replayed one at a time under a
persistent tape, so that TensorFlow gives the adjoint at every intermediate node, and
the ops TensorFlow recorded for its own gradient."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.ops import Node
from ..problem.problem import Problem
from .gradient import constant_tensors, run_nodes, tape_data, tf_variables
from .tensorflow import tensorflow

# Graph bookkeeping, not arithmetic: left out when listing the ops TensorFlow records.
_NOT_ARITHMETIC = frozenset({"Placeholder", "ReadVariableOp", "Const", "Identity", "NoOp"})


@dataclass(frozen=True)
class BackwardTrace:
    """Every node's value and adjoint dL/d(node), as TensorFlow computed them.

    One entry per sample, or one for scalars: arrays in the tape's dtype (half the
    bytes of float64 to send from the training process for float32), or any
    sequence of floats. The backward section reads them as float64, exactly.
    """

    values: Mapping[str, Sequence[float] | np.ndarray]
    adjoints: Mapping[str, Sequence[float] | np.ndarray | None]  # None: not watched
    recorded_ops: tuple[str, ...]  # op types TensorFlow records for the script's expressions


def _flat(tensor: Any) -> np.ndarray:
    return np.asarray(tensor.numpy()).reshape(-1)


def _data(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """x and y as arrays of the tape's dtype, shaped as the script holds them."""
    return tape_data(problem)


def recorded_ops(
    problem: Problem, data: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[str, ...]:
    """The arithmetic op types TensorFlow records for the model's and loss's own code.

    Traced once with ``tf.function``; the node-by-node replay must use the same ops.
    `data` is x and y as arrays, when the caller has them already.
    """
    tf = tensorflow()
    model = problem.model_entry
    loss_definition = problem.loss_entry
    variables = tf_variables(problem, problem.initial.values)
    x_array, y_array = _data(problem) if data is None else data
    x, y = tf.constant(x_array), tf.constant(y_array)

    @tf.function
    def forward() -> Any:
        return loss_definition.tf_loss(tf, model.tf_prediction(tf, variables, x), y)

    graph = forward.get_concrete_function().graph
    return tuple(op.type for op in graph.get_operations() if op.type not in _NOT_ARITHMETIC)


def backward_at(problem: Problem, nodes: Sequence[Node]) -> BackwardTrace:
    """Replay `nodes` under a persistent tape and ask it for dL/d(node) at every node.

    The variables are watched as in the script; the data x and y are constants the
    tape does not watch, so it has no adjoint for them (``tape.gradient`` gives None).
    """
    tf = tensorflow()
    variables = tf_variables(problem, problem.initial.values)
    data = _data(problem)
    tensors: dict[str, Any] = {
        **variables,
        **constant_tensors(problem),
        "x": tf.constant(data[0]),
        "y": tf.constant(data[1]),
    }
    # The ops run one at a time, so that every intermediate tensor is kept and can be
    # asked for its adjoint.
    with tf.GradientTape(persistent=True) as tape:
        tensors = run_nodes(tf, nodes, tensors)
    loss = tensors[nodes[-1].name]
    adjoints: dict[str, np.ndarray | None] = {}
    values: dict[str, np.ndarray] = {}
    for name, tensor in tensors.items():
        gradient = tape.gradient(loss, tensor)
        adjoints[name] = None if gradient is None else _flat(gradient)
        values[name] = _flat(tensor)
    del tape
    _split_kernel(problem, values, adjoints)
    return BackwardTrace(values=values, adjoints=adjoints, recorded_ops=recorded_ops(problem, data))


def _split_kernel(
    problem: Problem, values: dict[str, np.ndarray], adjoints: dict[str, np.ndarray | None]
) -> None:
    """The (n, k) matrix x and the (k, 1) kernel W as the graph's leaves: column j as
    x_j, row j as W_j (x has no adjoint: it is data)."""
    model = problem.model_entry
    if model.features == 1:
        return
    columns = values.pop("x").reshape(problem.n, model.features)
    adjoints.pop("x")
    for name, column in zip(model.data, columns.T, strict=True):
        values[name], adjoints[name] = column.copy(), None
    for variable, names in model.variable_parameters:
        if names == (variable,):
            continue
        held, gradient = values.pop(variable), adjoints.pop(variable)
        for j, name in enumerate(names):
            values[name] = held[j : j + 1]
            adjoints[name] = None if gradient is None else gradient[j : j + 1]
