"""Logistic regression: the logit z = W x + b (or ``tf.matmul(X, W) + b``) and the
binary cross-entropy of p = sigma(z), computed from the logit as
``tf.nn.sigmoid_cross_entropy_with_logits`` and ``BinaryCrossentropy(from_logits=True)``
do: max(z, 0) - z y + log(1 + e^-|z|), which never overflows."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, Any

from .entries import Loss, Model
from .linear import _tf_linear, linear_features
from .ops import Node

if TYPE_CHECKING:
    import sympy as sp


def _tf_bce_logits(tf: Any, logits: Any, y_true: Any) -> Any:
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits))


def stable_cross_entropy(z: sp.Expr, y: sp.Expr) -> sp.Expr:
    """One sample's cross-entropy of sigma(z) for a label y, in the form that never
    overflows: equal to -(y log sigma(z) + (1 - y) log(1 - sigma(z))) for every real z."""
    import sympy as sp  # here, not above: the tape's process builds entries too

    return sp.Max(z, 0) - z * y + sp.log(1 + sp.exp(-abs(z)))


LOGISTIC = Model(
    name="logistic",
    title="logistic regression",
    parameters=("W", "b"),
    prediction=lambda p, x: p["W"] * x[0] + p["b"],
    tf_prediction=_tf_linear,
    graph=(
        Node("Wx", "multiply", ("W", "x"), r"\left(W x\right)_{i}", "W·x"),
        Node("prediction", "add", ("Wx", "b"), r"z_{i}", "z"),
    ),
    task="classification",
)


@cache
def logistic_features(k: int) -> Model:
    """Logistic regression on k >= 2 features: the logit of ``tf.matmul(X, W) + b``."""
    linear = linear_features(k)
    logit = replace(linear.graph[-1], symbol=r"z_{i}", label="z")
    return replace(
        linear,
        name="logistic",
        title="logistic regression",
        graph=(*linear.graph[:-1], logit),
        original_units=None,
        task="classification",
    )


# (1/n) sum (z_i - y_i)^2 / 8: not offered on the command line, but its Hessian
# (1/4n) X~^T X~ (X~: X with a column of ones) is everywhere at least the cross-entropy's,
# (1/n) sum sigma'(z_i) x~_i x~_i^T, as sigma' <= 1/4: its 2 / lambda_max is a safe rate
# wherever training goes, not only at the initial values
EIGHTH_SQUARE = Loss(
    name="eighth-square",
    title="an eighth of the mean squared error",
    inner=lambda z, y: z - y,
    outer=lambda u: u**2 / 8,
    outer_rule="power rule",
    outer_rule_formula=r"\frac{d}{du} \frac{u^{2}}{8} = \frac{u}{4}",
    tf_loss=lambda tf, z, y: tf.reduce_mean(tf.square(z - y)) / 8,
)


BCE = Loss(
    name="bce",
    title="binary cross-entropy",
    inner=lambda z, y: z,  # the logit: the loss is no function of z - y
    outer=lambda u: u,  # unused: per_sample gives the loss
    outer_rule="chain rule through log and sigmoid",
    outer_rule_formula=r"\frac{\partial \ell}{\partial z} = \sigma(z) - y",
    tf_loss=_tf_bce_logits,
    curvature="bounded",
    curvature_bound=EIGHTH_SQUARE,
    wrong_derivatives=("forget-sigma", "flip-sign", "drop-mean"),
    sentence="problem.model_and_loss_bce",
    per_sample=stable_cross_entropy,
    derivation="logistic",
    labels="binary",
    task="classification",
)
