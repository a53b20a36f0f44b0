"""The logistic cross-entropy's bound (derive.exact.logistic_bound) against TensorFlow.

The tape computes what a learner writes: z = W x + b (one feature) or tf.matmul(X, W) + b,
``tf.nn.sigmoid_cross_entropy_with_logits`` and its mean, and the gradient. The references
are enclosed in ball arithmetic (derive.exact.certified); the tape must lie within the
bound plus the ball's radius on ordinary and on hard data (logits far out, where the
exp is flushed to zero; logits at the kink of max(z, 0); well-classified samples whose
gradient is mostly cancellation), while the classic wrong derivatives lie outside it.
"""

from __future__ import annotations

import platform
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from derive.exact.certified import enclose_total
from derive.exact.logistic_bound import logistic_bounds, logistic_roundings, op_roundings
from derive.models.registry import get_loss, get_model
from derive.symbolic.derivation import Y_I, Formula, N, build_symbolic
from derive.tape.order import Order, intra_op_threads


def _symbolic(k: int):  # type: ignore[no-untyped-def]
    """The linear model's symbols (z_i), with the logistic formulas written on them."""
    symbolic = build_symbolic(get_model("linear", k), get_loss("mse", features=k))
    z = symbolic.prediction
    sigma = 1 / (1 + sp.exp(-z))
    loss = Formula(1 / N, sp.Max(z, 0) - z * Y_I + sp.log(1 + sp.exp(-sp.Abs(z))))
    features = [*symbolic.features, sp.Integer(1)]
    gradients = [Formula(1 / N, (sigma - Y_I) * f) for f in features]
    return symbolic, loss, gradients


def _data(kind: str, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2, (n, k))
    theta = rng.normal(0, 1, k + 1)
    if kind == "far":  # logits out to +-120: exp(-|z|) flushed to zero for many samples
        x *= 20
        theta *= 3
    x = x.astype(np.float32)
    theta = theta.astype(np.float32)
    z = x.astype(np.float64) @ theta[:-1].astype(np.float64) + theta[-1]
    if kind == "separable":  # every sample well classified: the gradient is cancellation
        y = (z > 0).astype(np.float32)
    elif kind == "kink":  # logits near 0: b chosen so that sample 0's z is about 0
        theta[-1] = np.float32(-(z[0] - theta[-1]))
        y = (rng.uniform(0, 1, n) < 0.5).astype(np.float32)
    elif kind == "untrained":  # labels that owe nothing to theta: a gradient far from 0
        y = (rng.uniform(0, 1, n) < 0.5).astype(np.float32)
    else:  # labels drawn from theta's own probabilities: near the optimum
        with np.errstate(over="ignore"):
            y = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-z))).astype(np.float32)
    return x, y, theta


def _tape(x: np.ndarray, y: np.ndarray, theta: np.ndarray) -> list[float]:
    import tensorflow as tf

    k = x.shape[1]
    if k == 1:
        w = tf.Variable(theta[0])
        b = tf.Variable(theta[1])
        with tf.GradientTape() as tape:
            z = w * tf.constant(x[:, 0]) + b
            loss = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.constant(y), logits=z)
            )
        grads = tape.gradient(loss, [w, b])
        return [float(loss), float(grads[0]), float(grads[1])]
    w = tf.Variable(theta[:-1].reshape(k, 1))
    b = tf.Variable(theta[-1:])
    with tf.GradientTape() as tape:
        z = tf.matmul(tf.constant(x), w) + b
        loss = tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.constant(y.reshape(-1, 1)), logits=z)
        )
    gw, gb = tape.gradient(loss, [w, b])
    return [float(loss), *(float(v) for v in gw.numpy().ravel()), float(gb.numpy()[0])]


def _depth(n: int) -> int:
    import tensorflow as tf

    order = Order(
        threads=intra_op_threads(tf.config.threading.get_intra_op_parallelism_threads()),
        tensorflow_version=tf.__version__,
        machine=platform.machine(),
    )
    return order.depth(n, "float32")


def _case(kind: str, k: int, n: int, seed: int):  # type: ignore[no-untyped-def]
    x, y, theta = _data(kind, k, n, seed)
    symbolic, loss, gradients = _symbolic(k)
    names = list(symbolic.parameters)
    parameters = {name: float(v) for name, v in zip(names, theta, strict=True)}
    columns = [x[:, j].astype(np.float64) for j in range(k)]
    labels = y.astype(np.float64)
    exact = [Fraction(v) for v in parameters.values()]
    balls = [enclose_total(symbolic, f, exact, columns, labels) for f in (loss, *gradients)]
    found = logistic_bounds("float32", parameters, columns, labels, _depth(n))
    bounds = [found.bounds[key] for key in ("L", *names)]
    return x, y, theta, symbolic, balls, bounds


@pytest.mark.tensorflow
@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("kind", ["ordinary", "untrained", "far", "separable", "kink"])
def test_the_tape_lies_within_the_bound(kind: str, k: int) -> None:
    for seed, n in ((1, 7), (2, 1000), (3, 4096)):
        x, y, theta, _, balls, bounds = _case(kind, k, n, seed + 10 * k)
        for value, ball, bound in zip(_tape(x, y, theta), balls, bounds, strict=True):
            assert abs(Fraction(value) - ball.midpoint) <= Fraction(bound.value) + ball.radius
            assert ball.relative_radius < 1e-40  # cancellation in a gradient costs some digits


@pytest.mark.tensorflow
@pytest.mark.parametrize("k", [1, 2])
def test_the_bound_tells_a_wrong_derivative_apart(k: int) -> None:
    """Away from the optimum the bound is far below the value (a tenth at most; with
    several features MatMul's order-free sum costs the most), so the classic mistakes
    fail: sigma' forgotten ((z - y) x), the sign flipped, 1/n lost."""
    x, y, theta, symbolic, balls, bounds = _case("untrained", k, 1000, 5 + k)
    tape = _tape(x, y, theta)
    for ball, bound in zip(balls, bounds, strict=True):
        assert bound.value < abs(float(ball.midpoint)) / 10
    z = symbolic.prediction
    exact = [Fraction(float(v)) for v in theta]
    columns = [x[:, j].astype(np.float64) for j in range(k)]
    labels = y.astype(np.float64)
    feature = symbolic.features[0]
    wrong = {
        "sigma forgotten": Formula(1 / N, (z - Y_I) * feature),
        "sign flipped": Formula(1 / N, (Y_I - 1 / (1 + sp.exp(-z))) * feature),
        "mean lost": Formula(sp.Integer(1), (1 / (1 + sp.exp(-z)) - Y_I) * feature),
    }
    for label, formula in wrong.items():
        ball = enclose_total(symbolic, formula, exact, columns, labels)
        assert abs(Fraction(tape[1]) - ball.midpoint) > Fraction(bounds[1].value), label


def test_measured_ops_count_as_roundings() -> None:
    """An op measured at a ULPs counts as ceil(2a) roundings; a correctly rounded one
    would be 1. The float32 table's exp (1.31 ULP) is 3."""
    assert op_roundings("exp", "float32") == 3
    assert op_roundings("reciprocal", "float32") >= 1
    counts = logistic_roundings(1000, 5, "float32", depth=10)
    assert counts.logit == 6 and counts.matmul_depth == 999
    assert logistic_roundings(1000, 1, "float32", depth=10).matmul_depth == 10
