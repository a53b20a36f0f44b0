"""Every training step of logistic regression checked (derive.exact.logistic_steps):
float64 references within their stated error of ball arithmetic, and TensorFlow's SGD
steps within the bound, while a step's gradient off by a thousandth fails."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from derive.exact.certified import enclose_total
from derive.exact.logistic_steps import check_step, float64_references
from derive.models.registry import get_loss, get_model
from derive.symbolic.derivation import build_symbolic
from tests.test_logistic_bound import _data, _depth


@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("kind", ["untrained", "far", "separable"])
def test_float64_references_lie_within_their_error_of_the_balls(kind: str, k: int) -> None:
    x, y, theta = _data(kind, k, 300, 20 + k)
    symbolic = build_symbolic(get_model("logistic", k), get_loss("bce"))
    names = list(symbolic.parameters)
    parameters = {name: float(v) for name, v in zip(names, theta, strict=True)}
    columns = [x[:, j].astype(np.float64) for j in range(k)]
    labels = y.astype(np.float64)
    found = float64_references(parameters, columns, labels)
    exact = [Fraction(v) for v in parameters.values()]
    formulas = {"L": symbolic.loss} | {n: d.result for n, d in symbolic.derivations.items()}
    for key, formula in formulas.items():
        ball = enclose_total(symbolic, formula, exact, columns, labels)
        difference = abs(Fraction(found.values[key]) - ball.midpoint)
        assert difference <= Fraction(found.errors[key]) + ball.radius, key
        assert found.errors[key] < 1e-9 * max(abs(float(ball.midpoint)), 1e-30) + 1e-40, key


def _train(k: int, steps: int, seed: int):  # type: ignore[no-untyped-def]
    """SGD as a learner writes it: each step's parameters, loss and gradients."""
    import tensorflow as tf

    x, y, theta = _data("untrained", k, 300, seed)
    w = tf.Variable(theta[:-1].reshape(k, 1))
    b = tf.Variable(theta[-1:])
    optimizer = tf.keras.optimizers.SGD(learning_rate=0.5)
    data, labels = tf.constant(x), tf.constant(y.reshape(-1, 1))
    trace = []
    for _ in range(steps):
        before = [*w.numpy().ravel(), b.numpy()[0]]
        with tf.GradientTape() as tape:
            z = tf.matmul(data, w) + b
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=z))
        gw, gb = tape.gradient(loss, [w, b])
        trace.append((before, float(loss), [*gw.numpy().ravel(), float(gb.numpy()[0])]))
        optimizer.apply_gradients([(gw, w), (gb, b)])
    return x, y, trace


@pytest.mark.tensorflow
@pytest.mark.parametrize("k", [1, 2])
def test_every_sgd_step_lies_within_the_bound(k: int) -> None:
    x, y, trace = _train(k, 40, 30 + k)
    names = ["W"] if k == 1 else [f"W_{j}" for j in range(1, k + 1)]
    names.append("b")
    columns = [x[:, j].astype(np.float64) for j in range(k)]
    labels = y.astype(np.float64)
    depth = _depth(len(y))
    for step, (before, loss, gradients) in enumerate(trace):
        parameters = dict(zip(names, (float(v) for v in before), strict=True))
        tape = {"L": loss, **dict(zip(names, gradients, strict=True))}
        checks = check_step("float32", parameters, columns, labels, depth, tape)
        assert all(c.ok for c in checks), (step, [c.verdict for c in checks])
        assert checks[0].verdict == "pass", step
        if step == 0:  # away from the optimum, a gradient off by a thousandth is caught
            tape[names[0]] = gradients[0] * 1.001
            wrong = check_step("float32", parameters, columns, labels, depth, tape)
            assert wrong[1].verdict == "fail"
