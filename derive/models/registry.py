"""Models and losses as definitions: a SymPy expression and the TensorFlow ops that match it.

A new model or loss is a new entry here, not a new code path: the derivation, the
tape, the checks and the templates read these definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from functools import cache
from typing import TYPE_CHECKING, Any

from ..common.errors import InputError
from .entries import Loss, Model, OriginalUnits, feature_names
from .linear import LINE_IN_ORIGINAL_UNITS, _tf_linear, kernel_names, linear_features
from .logistic import BCE, LOGISTIC, logistic_features
from .ops import Node

__all__ = ["Loss", "Model", "OriginalUnits", "feature_names", "kernel_names", "linear_features"]

if TYPE_CHECKING:  # building the definitions needs no SymPy: the tape's process never loads it
    import sympy as sp


def _tf_mse(tf: Any, y_pred: Any, y_true: Any) -> Any:
    return tf.reduce_mean(tf.square(y_pred - y_true))


def _tf_mae(tf: Any, y_pred: Any, y_true: Any) -> Any:
    return tf.reduce_mean(tf.abs(y_pred - y_true))


def _tf_huber(delta: float) -> Callable[[Any, Any, Any], Any]:
    def loss(tf: Any, y_pred: Any, y_true: Any) -> Any:
        return tf.keras.losses.Huber(delta)(y_true, y_pred)

    return loss


def _half_square(u: sp.Expr) -> sp.Expr:
    return u**2 / 2


HALF_DELTA_SQUARED = r"\frac{\delta^{2}}{2}"


@cache
def huber(delta: Fraction, column: bool = False) -> Loss:
    """The Huber loss with threshold `delta` (the value the tape holds: rounded to its
    dtype), as ``tf.keras.losses.Huber(delta)`` computes it: 1/2 r^2 where |r| <= delta,
    delta |r| - 1/2 delta^2 elsewhere. One entry per delta (cached: the stages cache by
    entry, and two equal deltas must share one). `column`: on (n, 1) predictions (several
    features), where Keras reduces the last axis and then divides the batch's sum by n."""
    half = Fraction(1, 2)

    def outer(u: sp.Expr) -> sp.Expr:
        import sympy as sp  # here, not above: the tape's process builds entries too

        d = sp.Rational(delta.numerator, delta.denominator)
        return sp.Piecewise((u**2 / 2, abs(u) <= d), (d * abs(u) - d**2 / 2, True))

    def numeric(residuals: Any) -> Any:
        import numpy as np

        size = np.abs(residuals)
        value = float(delta)
        return np.where(size <= value, residuals**2 / 2, value * size - value**2 / 2)

    return Loss(
        name="huber",
        title="Huber loss",
        inner=lambda y_hat, y: y_hat - y,
        outer=outer,
        outer_rule="derivative of the Huber function",
        outer_rule_formula=(
            r"\frac{d}{du} h_{\delta}(u) = \begin{cases} u & \left|u\right| \le \delta \\ "
            r"\delta \operatorname{sign}(u) & \left|u\right| > \delta \end{cases}"
        ),
        tf_loss=_tf_huber(float(delta)),
        # Keras's own ops, in the order it runs them (Sub, Abs, LessEqual, Square, Mul,
        # Mul, Square, Mul, Sub, SelectV2, Mean): 1/2 delta^2 is computed on the tape too
        graph=(
            Node("residual", "subtract", ("prediction", "y"), "r_{i}", "r"),
            Node("abs", "abs", ("residual",), r"\left|r_{i}\right|", "|r|"),
            Node("inside", "less_equal", ("abs", "delta"), r"c_{i}", "|r| ≤ δ"),
            Node("square", "square", ("residual",), "r_{i}^{2}", "r²"),
            Node("quadratic", "multiply", ("half", "square"), r"q_{i}", "½r²"),
            Node("scaled", "multiply", ("delta", "abs"), r"s_{i}", "δ|r|"),
            Node("delta_squared", "square", ("delta",), r"\delta^{2}", "δ²"),
            Node("offset", "multiply", ("half", "delta_squared"), HALF_DELTA_SQUARED, "½δ²"),
            Node("linear", "subtract", ("scaled", "offset"), r"l_{i}", "δ|r| - ½δ²"),
            Node("huber", "select", ("inside", "quadratic", "linear"), r"h_{i}", "h"),
            Node("loss", "batch_mean" if column else "mean", ("huber",), "L", "L"),
        ),
        curvature="bounded",
        wrong_derivatives=("r-for-sign", "flip-sign", "drop-mean", "x-for-y"),
        numeric=numeric,
        sentence="problem.model_and_loss_huber",
        handout_keys="_huber",
        derivation_note="explain.huber_branches",
        bound_text="checks.bound_huber",
        constants=(("delta", delta), ("half", half)),
        switches=(delta, -delta),
        curvature_bound=HALF_SQUARE,
        # delta as the shortest decimal that reads back as the tape's value
        words=(("delta", repr(float(delta))),),
    )


# The quadratic branch of the Huber loss on every sample: not offered on the command
# line, but its Hessian bounds the Huber loss's everywhere (see Loss.curvature_bound)
HALF_SQUARE = Loss(
    name="half-square",
    title="half the mean squared error",
    inner=lambda y_hat, y: y_hat - y,
    outer=_half_square,
    outer_rule="power rule",
    outer_rule_formula=r"\frac{d}{du} \frac{u^{2}}{2} = u",
    tf_loss=lambda tf, y_pred, y_true: tf.reduce_mean(tf.square(y_pred - y_true)) / 2,
)

DEFAULT_HUBER_DELTA = Fraction(1)  # as tf.keras.losses.Huber


MODELS: Mapping[str, Model] = {
    "linear": Model(
        name="linear",
        title="linear regression",
        parameters=("W", "b"),
        prediction=lambda p, x: p["W"] * x[0] + p["b"],
        tf_prediction=_tf_linear,
        graph=(
            Node("Wx", "multiply", ("W", "x"), r"\left(W x\right)_{i}", "W·x"),
            Node("prediction", "add", ("Wx", "b"), r"\hat{y}_{i}", "ŷ"),
        ),
        original_units=LINE_IN_ORIGINAL_UNITS,
    ),
    "logistic": LOGISTIC,
}

LOSSES: Mapping[str, Loss] = {
    "mse": Loss(
        name="mse",
        title="mean squared error",
        inner=lambda y_hat, y: y_hat - y,
        outer=lambda u: u**2,
        outer_rule="power rule",
        outer_rule_formula=r"\frac{d}{du} u^{2} = 2 u",
        tf_loss=_tf_mse,
        graph=(
            Node("residual", "subtract", ("prediction", "y"), "r_{i}", "r"),
            Node("square", "square", ("residual",), "r_{i}^{2}", "r²"),
            Node("loss", "mean", ("square",), "L", "L"),
        ),
    ),
    "mae": Loss(
        name="mae",
        title="mean absolute error",
        inner=lambda y_hat, y: y_hat - y,
        outer=abs,  # SymPy's Abs on the (real) residual; its derivative is sign
        outer_rule="derivative of the absolute value",
        outer_rule_formula=r"\frac{d}{du} \left|u\right| = \operatorname{sign}(u)",
        tf_loss=_tf_mae,
        graph=(
            Node("residual", "subtract", ("prediction", "y"), "r_{i}", "r"),
            Node("abs", "abs", ("residual",), r"\left|r_{i}\right|", "|r|"),
            Node("loss", "mean", ("abs",), "L", "L"),
        ),
        curvature="none",
        wrong_derivatives=("r-for-sign", "flip-sign", "drop-mean", "x-for-y"),
        numeric=abs,
        kinks=(0,),
        sentence="problem.model_and_loss_mae",
        derivation_note="explain.sign_convention",
        handout_keys="_mae",
        bound_text="checks.bound_mae",
    ),
    "bce": BCE,
}


# What a Problem uses when the caller names no model or loss: the reference script's.
# The one place these names are spelled out; every stage below reads the Problem's entries.
DEFAULT_MODEL = "linear"
DEFAULT_LOSS = "mse"


def get_model(name: str, features: int = 1) -> Model:
    """The model entry by name, for `features` feature columns."""
    try:
        entry = MODELS[name]
    except KeyError:
        raise InputError("unknown model", name) from None
    if features == 1:
        return entry
    if name == "linear":
        return linear_features(features)
    if name == "logistic":
        return logistic_features(features)
    raise InputError(f"model {name} takes one feature, not", features)


LOSS_NAMES = (*LOSSES, "huber")  # huber: one entry per delta, made by huber()


def get_loss(name: str, huber_delta: Fraction | None = None, features: int = 1) -> Loss:
    """The loss entry by name; Huber's for `huber_delta` (default 1, as Keras), on
    `features` feature columns (Keras reduces (n, 1) predictions otherwise)."""
    if name == "huber":
        delta = DEFAULT_HUBER_DELTA if huber_delta is None else huber_delta
        return huber(delta, column=features > 1)
    try:
        return LOSSES[name]
    except KeyError:
        offered = ", ".join(losses_for(MODELS[DEFAULT_MODEL]))  # the command line's model
        raise InputError("unknown --loss; choose " + offered, name) from None


def losses_for(model: Model) -> tuple[str, ...]:
    """The names of the losses that serve this model's task."""
    huber_task = "regression"
    return tuple(
        name
        for name in LOSS_NAMES
        if (LOSSES[name].task if name in LOSSES else huber_task) == model.task
    )


def check_pairing(model: Model, loss: Loss) -> None:
    """A loss of another task (cross-entropy on a regression line, squares on a logit)
    explains nothing a learner writes: refused."""
    if loss.task != model.task:
        raise InputError(
            f"--loss {loss.name} is not a loss for {model.title}; choose "
            + ", ".join(losses_for(model)),
            loss.name,
        )


def check_labels(loss: Loss, y: Sequence[float]) -> None:
    """A binary loss needs labels 0 and 1; the first other label is refused."""
    if loss.labels != "binary":
        return
    for number, label in enumerate(y, start=1):
        if label not in (0, 1):
            raise InputError(
                f"--loss {loss.name} needs labels y of 0 or 1; sample {number} has", label
            )
