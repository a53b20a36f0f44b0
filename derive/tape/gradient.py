"""One ``tape.gradient(loss, parameters)``, as the reference script runs it, and what is
known of the order in which its sums were added.

The ops are the model's and the loss's own entries (derive/models), whatever the model:
for the linear model and the mean squared error ``W * x + b`` and
``reduce_mean(square(pred - y))``, eagerly, in a ``tf.function`` or under XLA.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.ops import OPS, Node
from ..problem.problem import Problem
from .order import Order, intra_op_threads
from .tensorflow import in_mode, tensorflow


@dataclass(frozen=True)
class TapeResult:
    """What the tape computed at one set of parameter values."""

    loss: float
    gradients: Mapping[str, float]
    tensorflow_version: str
    # How the tape added up its sums, as far as known (None: not known, n - 1).
    order: Order | None = None


def tf_variables(problem: Problem, values: Mapping[str, float]) -> dict[str, Any]:
    """The script's variables at these parameter values: a scalar per parameter, or, for
    several features, the (k, 1) kernel W holding W_1 ... W_k, and the scalar b."""
    tf = tensorflow()
    variables = {}
    for variable, names in problem.model_entry.variable_parameters:
        held = [values[name] for name in names]
        array = np.asarray(held[0] if names == (variable,) else [[v] for v in held])
        variables[variable] = tf.Variable(array.astype(problem.dtype), name=variable)
    return variables


def by_parameter(problem: Problem, tensors: Sequence[Any]) -> dict[str, float]:
    """Tensors, one per variable (gradients, values), as floats by parameter name."""
    found: dict[str, float] = {}
    layout = problem.model_entry.variable_parameters
    for (_, names), tensor in zip(layout, tensors, strict=True):
        flat = np.asarray(tensor.numpy()).reshape(-1)
        found.update(zip(names, (float(v) for v in flat), strict=True))
    return found


def tape_data(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """x and y as the learner's script holds them, in the tape's dtype: one feature as
    two vectors; several as the (n, k) matrix X and y as an (n, 1) column, the shape of
    XW, so that XW - y subtracts row by row and does not broadcast to (n, n)."""
    y = np.asarray(problem.y, dtype=problem.dtype)
    if problem.k == 1:
        return np.asarray(problem.x, dtype=problem.dtype), y
    x = np.asarray(problem.columns, dtype=problem.dtype).T.copy()
    return x, y.reshape(-1, 1)


def tape_order(problem: Problem, terms: Any = None) -> Order:
    """What is known of the order of the tape's sums: the intra-op thread count of its
    CPU device, TensorFlow's version, the machine; and, for TensorFlow's own kernels
    (not XLA), whether ``tf.reduce_sum`` of `terms` (a tensor of the tape's per-sample
    values) equals :func:`derive.tape.summation.tf_cpu_sum` bit for bit."""
    import platform

    from .summation import tf_cpu_sum

    tf = tensorflow()
    threads = intra_op_threads(tf.config.threading.get_intra_op_parallelism_threads())
    order = Order(
        mode=problem.mode,
        threads=threads,
        tensorflow_version=tf.__version__,
        machine=platform.machine(),
    )
    if terms is None or order.reason != "cpu-order":
        return order
    values = np.asarray(terms.numpy()).reshape(-1)
    tape_sum = tf.reduce_sum(terms).numpy()
    emulated = values.dtype.type(tf_cpu_sum(values, threads))
    same = tape_sum.tobytes() == np.asarray(emulated, dtype=values.dtype).tobytes()
    return dataclasses.replace(order, confirmed=bool(same))


# The ops of derive.models.ops in TensorFlow. Python's operators give the same TensorFlow
# ops as an entry's own ``tf_prediction`` written with them (the linear model's
# ``W * x + b``: Mul, then AddV2).
TF_OPS: Mapping[str, Callable[..., Any]] = {
    "multiply": lambda tf, a, b: a * b,
    "add": lambda tf, a, b: a + b,
    "subtract": lambda tf, a, b: a - b,
    "square": lambda tf, a: tf.square(a),
    "abs": lambda tf, a: tf.abs(a),
    "less_equal": lambda tf, a, b: a <= b,
    "select": lambda tf, c, a, b: tf.where(c, a, b),
    "matmul": lambda tf, a, b: tf.matmul(a, b),
    "mean": lambda tf, a: tf.reduce_mean(a),
    "batch_mean": lambda tf, a: _batch_mean(tf, a),
}


def _batch_mean(tf: Any, terms: Any) -> Any:
    """What a Keras loss does with (n, 1) per-sample values: the mean over the last axis,
    then the sum over the batch divided by the batch size."""
    per_sample = tf.reduce_mean(terms, axis=-1)
    size = tf.cast(tf.reduce_prod(tf.shape(per_sample)), terms.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(per_sample), size)


def constant_tensors(problem: Problem) -> dict[str, Any]:
    """The loss's scalar constants (Huber's delta and 1/2) as tensors of the tape's dtype."""
    tf = tensorflow()
    return {
        name: tf.constant(float(value), dtype=problem.dtype)
        for name, value in problem.loss_entry.constants
    }


def run_nodes(tf: Any, nodes: Sequence[Node], tensors: Mapping[str, Any]) -> dict[str, Any]:
    """`tensors` (the leaves by name) and every node's tensor, the nodes run in order."""
    values = dict(tensors)
    for node in nodes:
        operands = (values[name] for name in node.tensor_inputs)
        values[node.name] = TF_OPS[node.op](tf, *operands)
    return values


def squares(problem: Problem, variables: Mapping[str, Any], x: Any, y: Any) -> Any:
    """The tape's per-sample terms of the loss at `variables` (for the mean squared error
    (W x_i + b - y_i)^2): the input of the entries' mean, their graph run up to it."""
    tf = tensorflow()
    nodes = (*problem.model_entry.graph, *problem.loss_entry.graph)
    mean = next(node for node in nodes if OPS[node.op].reduces)
    upstream = nodes[: nodes.index(mean)]
    leaves = {**variables, **constant_tensors(problem), "x": x, "y": y}
    return run_nodes(tf, upstream, leaves)[mean.inputs[0]]


def gradient_at(problem: Problem, values: Mapping[str, float] | None = None) -> TapeResult:
    """Run ``tape.gradient(loss, parameters)`` once, as the reference script does
    (eagerly, in a tf.function or under XLA: ``problem.mode``)."""
    tf = tensorflow()
    model = problem.model_entry
    loss_definition = problem.loss_entry
    variables = tf_variables(problem, values or problem.initial.values)
    x_array, y_array = tape_data(problem)
    x, y = tf.constant(x_array), tf.constant(y_array)

    def step() -> Any:
        with tf.GradientTape() as tape:
            prediction = model.tf_prediction(tf, variables, x)
            loss = loss_definition.tf_loss(tf, prediction, y)
        return loss, tape.gradient(loss, list(variables.values()))

    loss, gradients = in_mode(step, problem.mode)()
    return TapeResult(
        loss=float(loss.numpy()),
        gradients=by_parameter(problem, gradients),
        tensorflow_version=tf.__version__,
        order=tape_order(problem, squares(problem, variables, x, y)),
    )
