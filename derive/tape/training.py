"""The script's training loop: TensorFlow's own SGD optimizer, every step's parameters,
loss and gradients recorded (the Trace) for the checks and the plots."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..problem.problem import Problem
from .backward import BackwardTrace
from .gradient import TapeResult, squares, tape_data, tape_order, tf_variables
from .order import Order
from .tensorflow import in_mode, tensorflow


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
    model = problem.model_entry
    loss_definition = problem.loss_entry
    variables = tf_variables(problem, problem.initial.values)
    # The parameters in the order the variables hold them (W_1 ... W_k of a kernel, b)
    names = [name for _, held in model.variable_parameters for name in held]
    x_array, y_array = tape_data(problem)
    x, y = tf.constant(x_array), tf.constant(y_array)
    sgd = optimizer() if optimizer is not None else _sgd(problem.training.learning_rate)
    sgd.build(list(variables.values()))
    steps = problem.training.steps

    def gradient() -> Any:
        with tf.GradientTape() as tape:
            loss = loss_definition.tf_loss(tf, model.tf_prediction(tf, variables, x), y)
        return loss, tape.gradient(loss, list(variables.values()))

    if problem.mode == "xla":
        gradient = in_mode(gradient, "xla")

    def evaluate() -> Any:
        """One row: loss, gradients, then the parameters they were computed at."""
        loss, gradients = gradient()
        # A kernel's (k, 1) gradient and value enter the row as k entries each
        flat = [
            tf.reshape(t, [-1]) for t in (*gradients, *(v.read_value() for v in variables.values()))
        ]
        row = tf.concat([tf.reshape(loss, [1]), *flat], axis=0)
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
    order = tape_order(problem, squares(problem, variables, x, y))
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
