"""Everything that runs TensorFlow: the script's forward pass, its gradient, its training.

TensorFlow is imported lazily (it costs seconds) and its C++ log lines are silenced
before the import. The ops are the reference script's own: ``W * x + b``,
``reduce_mean(square(pred - y))``, ``GradientTape.gradient(loss, [W, b])`` and
``SGD(learning_rate).apply_gradients``; and the same ops replayed one at a time, to read
the adjoint at every node (the backward pass).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

from ..exact.roundings import Order, intra_op_threads
from ..models.ops import Node
from ..models.registry import get_loss, get_model
from ..problem.problem import Problem


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ code logs there at import
    time, before TF_CPP_MIN_LOG_LEVEL or absl logging settings take effect."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@cache
def tensorflow() -> ModuleType:
    """Import TensorFlow once, quietly."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


@dataclass(frozen=True)
class TapeResult:
    """What the tape computed at one set of parameter values."""

    loss: float
    gradients: Mapping[str, float]
    tensorflow_version: str
    # How the tape added up its sums, as far as known (None: not known, n - 1).
    order: Order | None = None


def _variables(problem: Problem, values: Mapping[str, float]) -> dict[str, Any]:
    tf = tensorflow()
    return {
        name: tf.Variable(np.asarray(value, dtype=problem.dtype), name=name)
        for name, value in values.items()
    }


def in_mode(function: Callable[..., Any], mode: str) -> Callable[..., Any]:
    """`function` as the learner's script may run it: as is (eager), in a
    ``tf.function``, or in ``tf.function(jit_compile=True)`` (XLA)."""
    if mode == "eager":
        return function
    return tensorflow().function(function, jit_compile=mode == "xla", autograph=False)


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


def _squares(problem: Problem, variables: Mapping[str, Any], x: Any, y: Any) -> Any:
    """The tape's per-sample terms of the loss, (W x_i + b - y_i)^2, at `variables`."""
    tf = tensorflow()
    return tf.square(get_model(problem.model).tf_prediction(variables, x) - y)


def gradient_at(problem: Problem, values: Mapping[str, float] | None = None) -> TapeResult:
    """Run ``tape.gradient(loss, parameters)`` once, as the reference script does
    (eagerly, in a tf.function or under XLA: ``problem.mode``)."""
    tf = tensorflow()
    model = get_model(problem.model)
    loss_definition = get_loss(problem.loss)
    variables = _variables(problem, values or problem.initial.values)
    x = tf.constant(np.asarray(problem.x, dtype=problem.dtype))
    y = tf.constant(np.asarray(problem.y, dtype=problem.dtype))

    def step() -> Any:
        with tf.GradientTape() as tape:
            prediction = model.tf_prediction(variables, x)
            loss = loss_definition.tf_loss(prediction, y)
        return loss, tape.gradient(loss, list(variables.values()))

    loss, gradients = in_mode(step, problem.mode)()
    return TapeResult(
        loss=float(loss.numpy()),
        gradients={
            name: float(gradient.numpy())
            for name, gradient in zip(variables, gradients, strict=True)
        },
        tensorflow_version=tf.__version__,
        order=tape_order(problem, _squares(problem, variables, x, y)),
    )


# The tape's backward pass, node by node. The ops are those of derive.models.ops, run one at a
# time so that every intermediate tensor can be kept and asked for its adjoint; Python's
# operators give the same TensorFlow ops as the original script's ``W * x + b``.
_TF_OPS: Mapping[str, Callable[..., Any]] = {
    "multiply": lambda tf, a, b: a * b,
    "add": lambda tf, a, b: a + b,
    "subtract": lambda tf, a, b: a - b,
    "square": lambda tf, a: tf.square(a),
    "mean": lambda tf, a: tf.reduce_mean(a),
}

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
    """x and y as arrays of the tape's dtype."""
    return np.asarray(problem.x, dtype=problem.dtype), np.asarray(problem.y, dtype=problem.dtype)


def recorded_ops(
    problem: Problem, data: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[str, ...]:
    """The arithmetic op types TensorFlow records for the model's and loss's own code.

    Traced once with ``tf.function``; the node-by-node replay must use the same ops.
    `data` is x and y as arrays, when the caller has them already.
    """
    tf = tensorflow()
    model = get_model(problem.model)
    loss_definition = get_loss(problem.loss)
    variables = _variables(problem, problem.initial.values)
    x_array, y_array = _data(problem) if data is None else data
    x, y = tf.constant(x_array), tf.constant(y_array)

    @tf.function
    def forward() -> Any:
        return loss_definition.tf_loss(model.tf_prediction(variables, x), y)

    graph = forward.get_concrete_function().graph
    return tuple(op.type for op in graph.get_operations() if op.type not in _NOT_ARITHMETIC)


def backward_at(problem: Problem, nodes: Sequence[Node]) -> BackwardTrace:
    """Replay `nodes` under a persistent tape and ask it for dL/d(node) at every node.

    The variables are watched as in the script; the data x and y are constants the
    tape does not watch, so it has no adjoint for them (``tape.gradient`` gives None).
    """
    tf = tensorflow()
    variables = _variables(problem, problem.initial.values)
    data = _data(problem)
    tensors: dict[str, Any] = {**variables, "x": tf.constant(data[0]), "y": tf.constant(data[1])}
    with tf.GradientTape(persistent=True) as tape:
        for node in nodes:
            operands = [tensors[name] for name in node.inputs]
            tensors[node.name] = _TF_OPS[node.op](tf, *operands)
    loss = tensors[nodes[-1].name]
    adjoints: dict[str, np.ndarray | None] = {}
    for name, tensor in tensors.items():
        gradient = tape.gradient(loss, tensor)
        adjoints[name] = None if gradient is None else _flat(gradient)
    del tape
    return BackwardTrace(
        values={name: _flat(tensor) for name, tensor in tensors.items()},
        adjoints=adjoints,
        recorded_ops=recorded_ops(problem, data),
    )


@dataclass(frozen=True)
class Trace:
    """A training run as the tape computed it, at steps s = 0, 1, ..., N.

    ``parameters[name][s]`` is the variable's value after s updates (s = 0: the
    initial value). ``loss[s]`` and ``gradients[name][s]`` are what the tape computed
    at those values: for s < N in update s + 1, for s = N in one more evaluation
    after the last update. All arrays are in the problem's dtype.
    """

    parameters: Mapping[str, np.ndarray]
    loss: np.ndarray
    gradients: Mapping[str, np.ndarray]
    learning_rate_held: float  # the learning rate as the optimizer holds it (float32)
    engine: str  # how the steps ran, shown in the report
    tensorflow_version: str
    # The node-by-node replay at the initial values, when it ran with the training
    # (in the training process); else the backward section runs its own.
    backward: BackwardTrace | None = None
    # How the tape added up its sums, as far as known (None: not known, n - 1).
    order: Order | None = None

    @property
    def steps(self) -> int:
        return len(self.loss) - 1

    def first_non_finite(self) -> int | None:
        """The first step at which any recorded value is infinite or NaN (divergence)."""
        arrays = [self.loss, *self.gradients.values(), *self.parameters.values()]
        finite = np.logical_and.reduce([np.isfinite(a) for a in arrays])
        bad = np.flatnonzero(~finite)
        return int(bad[0]) if bad.size else None

    def last_finite(self) -> int:
        """The last step whose values are all finite (-1 if there is none)."""
        first_bad = self.first_non_finite()
        return self.steps if first_bad is None else first_bad - 1

    def display_steps(self, every: int) -> list[int]:
        """0, every, 2 every, ... up to the last finite step, and that step itself."""
        last = max(self.last_finite(), 0)
        shown = list(range(0, last + 1, every))
        if shown[-1] != last:
            shown.append(last)
        return shown

    def at(self, step: int) -> TapeResult:
        return TapeResult(
            loss=float(self.loss[step]),
            gradients={name: float(g[step]) for name, g in self.gradients.items()},
            tensorflow_version=self.tensorflow_version,
            order=self.order,
        )


def _sgd(learning_rate: Any) -> Any:
    return tensorflow().keras.optimizers.SGD(learning_rate)


def train(
    problem: Problem,
    *,
    compiled: bool = True,
    optimizer: Callable[[], Any] | None = None,
) -> Trace:
    """Train as the reference script does and record every step.

    ``compiled`` runs the loop as one ``tf.function`` (a ``tf.while_loop`` writing
    to a TensorArray), which gives the same values, bit for bit, as the eager loop
    (``compiled=False``) at a fraction of the time; the test suite checks that.
    ``optimizer`` replaces ``SGD(learning_rate)`` (tests use it to break the rule).
    With ``problem.mode`` "xla" the loss and its gradients are computed in
    ``tf.function(jit_compile=True)``, as a script compiling its gradient with XLA;
    "eager" and "function" use TensorFlow's own kernels (the same bits either way).
    """
    tf = tensorflow()
    model = get_model(problem.model)
    loss_definition = get_loss(problem.loss)
    variables = _variables(problem, problem.initial.values)
    names = list(variables)
    x = tf.constant(np.asarray(problem.x, dtype=problem.dtype))
    y = tf.constant(np.asarray(problem.y, dtype=problem.dtype))
    sgd = optimizer() if optimizer is not None else _sgd(problem.training.learning_rate)
    sgd.build(list(variables.values()))
    steps = problem.training.steps

    def gradient() -> Any:
        with tf.GradientTape() as tape:
            loss = loss_definition.tf_loss(model.tf_prediction(variables, x), y)
        return loss, tape.gradient(loss, list(variables.values()))

    if problem.mode == "xla":
        gradient = in_mode(gradient, "xla")

    def evaluate() -> Any:
        """One row: loss, gradients, then the parameters they were computed at."""
        loss, gradients = gradient()
        row = tf.stack([loss, *gradients, *(v.read_value() for v in variables.values())])
        return row, gradients

    def step(s: Any, rows: Any) -> Any:
        row, gradients = evaluate()
        sgd.apply_gradients(zip(gradients, variables.values(), strict=True))
        return rows.write(s, row)

    def run(count: Any) -> Any:
        rows = tf.TensorArray(problem.dtype, size=count + 1)
        _, rows = tf.while_loop(
            lambda s, _: s < count,
            lambda s, rows: (s + 1, step(s, rows)),
            (tf.constant(0), rows),
        )
        row, _ = evaluate()
        return rows.write(count, row).stack()

    # How the sums were added up: a sum of the tape's own per-sample terms, at the
    # initial values, against the emulation of TensorFlow's order (a few milliseconds
    # at a million samples), before the variables change.
    order = tape_order(problem, _squares(problem, variables, x, y))
    if compiled:
        # The loop is written as a tf.while_loop, so no autograph conversion is needed
        # (it would cost a tenth of a second of source rewriting).
        table = tf.function(run, autograph=False)(tf.constant(steps)).numpy()
        engine = "one tf.function (the loop compiled to a tf.while_loop)"
        if problem.mode == "xla":
            engine += ", the gradient in tf.function(jit_compile=True)"
    else:
        rows = tf.TensorArray(problem.dtype, size=steps + 1)
        for s in range(steps):
            rows = step(s, rows)
        row, _ = evaluate()
        table = rows.write(steps, row).stack().numpy()
        engine = "eager, one Python call per step"
        if problem.mode == "xla":
            engine += ", the gradient in tf.function(jit_compile=True)"
    k = len(names)
    return Trace(
        parameters={name: table[:, 1 + k + j] for j, name in enumerate(names)},
        loss=table[:, 0],
        gradients={name: table[:, 1 + j] for j, name in enumerate(names)},
        learning_rate_held=float(np.asarray(sgd.learning_rate)),
        engine=engine,
        tensorflow_version=tf.__version__,
        order=order,
    )
